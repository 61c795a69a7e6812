"""The cost of one act() of an ONNX policy (onnxruntime, CPython) beside the Python PongTracker.

    python benchmarks/onnx_policy.py [--frames N] [--repeats R]

Plays N frames of Pong (seeded; both paddles driven by the tracker so the ball moves) to
collect the right player's observations, then times act() over them R times for:

- PongTracker (game/games/policies.py), the Python policy the demo's bots use;
- the tiny Gemm+ArgMax tracker of tests/test_onnx_policy.py as an OnnxPolicy with
  `observation_keys` (the declared mapping), and with a numpy `preprocess` function;
- the same model in a session with onnxruntime's default options (a thread pool as wide as the
  machine, spinning after each run) instead of coplay's one thread without spinning;
- each wrapped in PacedPolicy (reaction delay 6, action repeat 2), as a server bot plays it.

Prints the best of R runs in µs per act(), wall clock and process CPU time (all threads: the
spinning of a thread pool shows there), and the share of one core an AI seat's policy costs at
60 fps. Timings on a shared machine are noisy: re-run on a quiet one and read them as relative.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from game.adapters.onnx_policy import OnnxPolicy  # noqa: E402
from game.games.policies import PongTracker  # noqa: E402
from game.games.pong import Pong  # noqa: E402
from game.paced_policy import PacedPolicy  # noqa: E402
from game.spaces import Discrete  # noqa: E402
from tests.test_onnx_policy import TRACKER_KEYS, tracker_model  # noqa: E402


def observations(frames: int) -> list[dict[str, Any]]:
    env, left, right = Pong({"max_score": 1000, "max_frames": frames + 1}), PongTracker(), PongTracker()
    left.setup("left", Discrete(3), 1)
    right.setup("right", Discrete(3), 2)
    obs = env.reset(7)
    seen = []
    for _ in range(frames):
        seen.append(obs["right"])
        obs = env.step({"left": left.act(obs["left"]), "right": right.act(obs["right"])})["observations"]
    return seen


def per_act_us(make: Any, seen: list[dict[str, Any]], repeats: int, paced: bool) -> tuple[float, float]:
    """The best (wall, CPU) µs per act() over `repeats` runs."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        policy = make()
        wrapped = PacedPolicy(policy, reaction_delay_frames=6, action_repeat=2, default_action=0)
        started, started_cpu = time.perf_counter(), time.process_time()
        if paced:
            for frame, obs in enumerate(seen):
                wrapped.act(obs, frame)
        else:
            for obs in seen:
                policy.act(obs)
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return wall / len(seen) * 1e6, cpu / len(seen) * 1e6


def default_session(factory: OnnxPolicy, path: str) -> OnnxPolicy:
    """`factory` with a session of onnxruntime's default options (what coplay's loader does not use)."""
    import onnxruntime

    copy = OnnxPolicy(factory.path, observation_keys=factory.observation_keys)
    copy.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seen = observations(args.frames)
    with tempfile.TemporaryDirectory() as folder:
        model = str(tracker_model(Path(folder) / "tracker.onnx"))
        keyed = OnnxPolicy(model, observation_keys=TRACKER_KEYS).load()
        numpy_pre = OnnxPolicy(model, preprocess=lambda o: np.array([[o["ball"][1], o["paddle"]]],
                                                                   dtype=np.float32)).load()

        def tracker() -> PongTracker:
            policy = PongTracker()
            policy.setup("right", Discrete(3), 3)
            return policy

        def onnx_player(factory: OnnxPolicy) -> Any:
            player = factory()
            player.setup("right", Discrete(3), 3)
            return player

        default = default_session(keyed, model)
        rows = [("PongTracker (Python)", tracker),
                ("OnnxPolicy, observation_keys", lambda: onnx_player(keyed)),
                ("OnnxPolicy, numpy preprocess", lambda: onnx_player(numpy_pre)),
                ("  same, onnxruntime default threads", lambda: onnx_player(default))]
        print(f"act() cost over {len(seen)} Pong observations, best of {args.repeats} runs")
        print("paced: in PacedPolicy with reaction delay 6 and action repeat 2 (the model runs every 2nd frame)")
        print(f"{'policy':36} {'wall µs':>8} {'CPU µs':>8} {'paced wall':>11} {'paced CPU':>10} "
              f"{'core share at 60 fps, paced':>28}")
        for name, make in rows:
            wall, cpu = per_act_us(make, seen, args.repeats, paced=False)
            paced_wall, paced_cpu = per_act_us(make, seen, args.repeats, paced=True)
            print(f"{name:36} {wall:8.1f} {cpu:8.1f} {paced_wall:11.1f} {paced_cpu:10.1f} "
                  f"{paced_cpu * 60 / 1e4:27.3f}%")


if __name__ == "__main__":
    main()
