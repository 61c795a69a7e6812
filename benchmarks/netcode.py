"""Netcode cost on the reference games, in CPython.

Prints, per game: env step, save (get_state) and hash times, the per-frame cost of a
P2P session on top of the env, the cost of an 8-frame rollback batch, and the ratio
(session + env) / (env alone) on the lan profile.

    python benchmarks/netcode.py [--frames N] [--repeat R] [--profile] [--baseline DIR]

`--baseline DIR` measures this checkout and DIR (an older checkout of coplay, e.g. made with
`git worktree add /tmp/base COMMIT`) in turns, each turn a fresh process running this script against
the other checkout's `game` and `netcode`, and prints both side by side with their ratio: the median
of R turns each, so that load from elsewhere hits both alike. `--profile` prints cProfile's top
functions of the two-peer session loop. The figures are CPU-bound and single-threaded: run on a quiet
machine, and compare medians.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve()
# `--code DIR` (used by --baseline) measures another checkout's game and netcode with this script.
CODE = Path(sys.argv[sys.argv.index("--code") + 1]) if "--code" in sys.argv[:-1] else HERE.parents[1]
sys.path.insert(0, str(CODE))

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
COMPARED = (("step_us", "env step"), ("frame_us", "frame w/ session"), ("session_us", "session only"), ("simulated_us", "simulated match"),
            ("rollback8_us", "8-frame rollback"), ("packet_chars", "chars per packet"))


def per_call_us(fn: Callable[[], Any], repeat: int) -> float:
    start = time.thread_time()
    for _ in range(repeat):
        fn()
    return (time.thread_time() - start) / repeat * 1e6


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

    session_frame, packet_chars = two_peers_on_memory_hub(make, actions)

    start = time.thread_time()
    report = run_sim_match(lambda _peer: make(), peers=2, profile="lan", frames=frames, seed=3)
    simulated = (time.thread_time() - start) / (frames * 2) * 1e6
    assert report.converged, report.reason
    return {
        "step_us": step, "get_state_us": get_state, "hash_us": hashing, "rollback8_us": rollback,
        "frame_us": session_frame, "session_us": session_frame - step, "ratio": session_frame / step,
        "simulated_us": simulated, "rollbacks_per_100": report.rollbacks_per_100_frames,
        "packet_chars": packet_chars,
    }


def two_peers_on_memory_hub(make: Callable[[], Any], actions: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean µs per peer-frame of two P2P sessions ticking a real env over an instant network,
    and the mean characters per packet sent."""
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
    start = time.thread_time()
    for frame, inputs in enumerate(actions):
        clock.advance_to(frame * config.frame_ms)
        for session, runner, local in runners:
            session.poll()
            runner.tick({local: inputs[local]})
    elapsed = (time.thread_time() - start) / (len(actions) * 2) * 1e6
    sent = [session.stats for session, _, _ in runners]
    return elapsed, sum(s.bytes_sent for s in sent) / sum(s.packets_sent for s in sent)


def run_checkout(code: Path, frames: int) -> dict[str, dict[str, float]]:
    """One turn of this script against CODE's game and netcode, in a process of its own."""
    command = [sys.executable, str(HERE), "--frames", str(frames), "--json", "--code", str(code)]
    output = subprocess.run(command, cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                            capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def print_table(results: dict[str, dict[str, float]]) -> None:
    header = ("game", "step", "get_state", "hash", "8-frame rollback", "frame w/ session", "session only",
              "(session+env)/env", "simulated match", "rollbacks/100f")
    print("{:<8} {:>8} {:>10} {:>8} {:>17} {:>17} {:>13} {:>17} {:>16} {:>15}".format(*header))
    for name, r in results.items():
        print(f"{name:<8} {r['step_us']:>6.1f}us {r['get_state_us']:>8.1f}us {r['hash_us']:>6.1f}us "
              f"{r['rollback8_us']:>15.1f}us {r['frame_us']:>15.1f}us {r['session_us']:>11.1f}us "
              f"{r['ratio']:>16.1f}x {r['simulated_us']:>14.1f}us {r['rollbacks_per_100']:>15.1f}")


def print_comparison(now: list[dict[str, dict[str, float]]], before: list[dict[str, dict[str, float]]],
                     baseline: Path) -> None:
    print(f"median of {len(now)} turns each; baseline: {baseline}")
    print(f"{'game':<8} {'figure':<18} {'now':>9} {'baseline':>9} {'now/baseline':>13}")
    for name in now[0]:
        for key, label in COMPARED:
            if key not in before[0][name]:
                continue
            new = statistics.median(turn[name][key] for turn in now)
            old = statistics.median(turn[name][key] for turn in before)
            unit = "" if key == "packet_chars" else "us"
            print(f"{name:<8} {label:<18} {new:>7.1f}{unit:<2} {old:>7.1f}{unit:<2} {new / old:>12.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5, help="turns of each checkout with --baseline (default 5)")
    parser.add_argument("--profile", action="store_true", help="cProfile the two-peer session loop (pong)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="an older checkout measured in turns with this one, side by side")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile:
        env = GAMES["pong"]()
        env.reset(1)
        actions = random_actions(env, args.frames)
        profiler = cProfile.Profile()
        profiler.enable()
        two_peers_on_memory_hub(GAMES["pong"], actions)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        return
    if args.json:
        print(json.dumps({name: measure(name, make, args.frames) for name, make in GAMES.items()}))
        return
    print(f"python {sys.version.split()[0]}, {args.frames} frames per figure, lan profile, 2 peers")
    if args.baseline:
        now: list[dict[str, dict[str, float]]] = []
        before: list[dict[str, dict[str, float]]] = []
        for _ in range(args.repeat):
            now.append(run_checkout(HERE.parents[1], args.frames))
            before.append(run_checkout(args.baseline.resolve(), args.frames))
        print_comparison(now, before, args.baseline)
    else:
        print_table({name: measure(name, make, args.frames) for name, make in GAMES.items()})
    print("frame w/ session: one peer-frame of two sessions on an instant in-memory network (poll, encode/decode, "
          "env step, saves, checksums every 10 frames); session only: the same less the env step.\n"
          "simulated match: one peer-frame of `coplay simulate` on the lan profile (adds the network simulator and "
          "convergence bookkeeping).")


if __name__ == "__main__":
    main()
