"""Replay speed: how many times faster than real time a recorded match re-simulates and verifies.

Records ten minutes of each reference game (seeded random inputs, checksums every 10
frames, as the server records), then times `app.analysis.replay.replay` on it.

    python benchmarks/replay.py [--minutes M]
"""
from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.data.recording import RecordingWriter, make_header  # noqa: E402
from app.analysis.replay import replay  # noqa: E402
from game.env import action_space_for  # noqa: E402
from game.hashing import state_hash  # noqa: E402
from game.policies import RandomPolicy  # noqa: E402

GAMES = {
    "pong": ("game.games.pong:Pong", {"max_score": 10**6, "max_frames": 10**7}, 60),
    "cooking": ("game.games.cooking:Cooking", {"time_limit": 10**7}, 8),
}


def record(path: Path, spec: str, config: dict[str, Any], fps: int, frames: int) -> None:
    from game.loader import load_class

    cls = load_class(spec)
    env = cls(config)
    players = list(env.players)
    header = make_header(match="bench", experiment="bench", scene="bench", created_at="now", game=spec,
                         game_source=inspect.getsource(sys.modules[cls.__module__]), config=config,
                         players=players, seats={}, netcode={}, fps=fps)
    policies = {p: RandomPolicy() for p in players}
    for index, (player, policy) in enumerate(policies.items()):
        policy.setup(player, action_space_for(env, player), index)
    with RecordingWriter(str(path), header) as writer:
        env.reset(1)
        writer.episode(0, 1)
        for frame in range(frames):
            if frame % 10 == 0:
                writer.checksum(0, frame, state_hash(env.get_state()), "s0")
            actions = {p: policy.act(None) for p, policy in policies.items()}
            writer.inputs(0, frame, [actions[p] for p in players])
            env.step(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="coplay-replay-"))
    print(f"python {sys.version.split()[0]}; {args.minutes:g} minutes of play per game, checksums every 10 frames")
    for name, (spec, config, fps) in GAMES.items():
        frames = int(args.minutes * 60 * fps)
        path = folder / f"{name}.jsonl"
        record(path, spec, config, fps, frames)
        started = time.perf_counter()
        result = replay(str(path))
        seconds = time.perf_counter() - started
        assert result.ok and result.frames == frames
        print(f"  {name:8} {frames:7d} frames at {fps:2d} fps in {seconds:6.2f} s: "
              f"{frames / seconds:9.0f} frames/s = {frames / fps / seconds:7.0f}x real time "
              f"({path.stat().st_size / 1e6:.1f} MB recording, {result.checked} checksums)")


if __name__ == "__main__":
    main()
