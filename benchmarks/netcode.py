"""Netcode cost on the reference games, in CPython.

Prints, per game: env step, save (get_state) and hash times, the per-frame cost of a
P2P session on top of the env, the cost of an 8-frame rollback batch, and the ratio
(session + env) / (env alone) on the lan profile.

    python benchmarks/netcode.py [--frames N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from game.env import action_space_for  # noqa: E402
from game.games.cooking import Cooking  # noqa: E402
from game.games.pong import Pong  # noqa: E402
from game.hashing import state_hash  # noqa: E402
from game.rng import Rng  # noqa: E402
from netcode.config import SessionConfig  # noqa: E402
from netcode.executor import Executor  # noqa: E402
from netcode.p2p import P2PSession  # noqa: E402
from netcode.requests import AdvanceFrame, LoadState, SaveState  # noqa: E402
from netcode.runner import SessionRunner  # noqa: E402
from netcode.sim import VirtualClock  # noqa: E402
from netcode.simmatch import run_sim_match  # noqa: E402
from netcode.transport import MemoryHub  # noqa: E402

GAMES: dict[str, Callable[[], Any]] = {
    "pong": lambda: Pong({"max_score": 10**6, "max_frames": 10**7}),
    "cooking": lambda: Cooking({"time_limit": 10**7}),
}


def per_call_us(fn: Callable[[], Any], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def random_actions(env: Any, count: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = Rng(seed)
    return [{p: action_space_for(env, p).sample(rng) for p in env.players} for _ in range(count)]


def measure(name: str, make: Callable[[], Any], frames: int) -> dict[str, float]:
    env = make()
    env.reset(1)
    actions = random_actions(env, frames)
    iterator = iter(actions)
    step = per_call_us(lambda: env.step(next(iterator)), frames)
    get_state = per_call_us(env.get_state, frames)
    state = env.get_state()
    hashing = per_call_us(lambda: state_hash(state), frames)

    executor = Executor(env, capacity=16)
    executor.frame = 0
    env.reset(1)
    executor.run([SaveState(0)])
    batch = [LoadState(0)] + [
        request for f in range(8) for request in (AdvanceFrame(f, actions[f], {}), SaveState(f + 1, f == 7))
    ]
    rollback = per_call_us(lambda: executor.run(batch), max(50, frames // 20))

    session_frame = two_peers_on_memory_hub(make, actions)

    start = time.perf_counter()
    report = run_sim_match(lambda _peer: make(), peers=2, profile="lan", frames=frames, seed=3)
    simulated = (time.perf_counter() - start) / (frames * 2) * 1e6
    assert report.converged, report.reason
    return {
        "step_us": step, "get_state_us": get_state, "hash_us": hashing, "rollback8_us": rollback,
        "frame_us": session_frame, "session_us": session_frame - step, "ratio": session_frame / step,
        "simulated_us": simulated, "rollbacks_per_100": report.rollbacks_per_100_frames,
    }


def two_peers_on_memory_hub(make: Callable[[], Any], actions: list[dict[str, Any]]) -> float:
    """Mean µs per peer-frame of two P2P sessions ticking a real env over an instant network."""
    clock, hub = VirtualClock(), MemoryHub()
    reference = make()
    config = SessionConfig.for_env(reference)
    first, second = reference.players
    runners = []
    for addr, local, other, remote in (("a", first, "b", second), ("b", second, "a", first)):
        env = make()
        env.reset(1)
        session = P2PSession(config, [local], {other: [remote]}, hub.endpoint(addr), clock)
        runners.append((session, SessionRunner(session, env), local))
    start = time.perf_counter()
    for frame, inputs in enumerate(actions):
        clock.advance_to(frame * config.frame_ms)
        for session, runner, local in runners:
            session.poll()
            runner.tick({local: inputs[local]})
    return (time.perf_counter() - start) / (len(actions) * 2) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.frames} frames per figure, lan profile, 2 peers")
    header = ("game", "step", "get_state", "hash", "8-frame rollback", "frame w/ session", "session only",
              "(session+env)/env", "simulated match", "rollbacks/100f")
    print("{:<8} {:>8} {:>10} {:>8} {:>17} {:>17} {:>13} {:>17} {:>16} {:>15}".format(*header))
    for name, make in GAMES.items():
        r = measure(name, make, args.frames)
        print(f"{name:<8} {r['step_us']:>6.1f}us {r['get_state_us']:>8.1f}us {r['hash_us']:>6.1f}us "
              f"{r['rollback8_us']:>15.1f}us {r['frame_us']:>15.1f}us {r['session_us']:>11.1f}us "
              f"{r['ratio']:>16.1f}x {r['simulated_us']:>14.1f}us {r['rollbacks_per_100']:>15.1f}")
    print("frame w/ session: one peer-frame of two sessions on an instant in-memory network (poll, encode/decode, "
          "env step, saves, checksums every 10 frames).\nsimulated match: one peer-frame of `coplay simulate` on "
          "the lan profile (adds the network simulator and convergence bookkeeping).")


if __name__ == "__main__":
    main()
