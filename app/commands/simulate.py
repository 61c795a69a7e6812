"""`coplay simulate`: a headless match of N peers over the simulated network."""
from __future__ import annotations

import argparse
import json
import time

from game.loader import load_class, parse_config
from netcode.sim import PROFILES
from netcode.simmatch import run_sim_match


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate", help="play a headless match of N peers over a simulated network and print a summary",
        description="Play a match with seeded random inputs over a simulated network and check that every "
        "peer converged to the same confirmed states as a plain lockstep run.",
    )
    parser.add_argument("spec", metavar="SPEC", help="the game: FILE.py:Class, package.module:Class or an adapter "
                        "spec (seeds:FILE.py:Class, gymnasium:ENV_ID, pettingzoo:MODULE)")
    parser.add_argument("--peers", type=int, help="number of peers (default 2, or 1 for a 1-player game)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="wifi", help="network profile (default wifi)")
    parser.add_argument("--frames", type=int, default=600, help="frames to play (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the game, the inputs and the network")
    parser.add_argument("--config", help="game config as a JSON object")
    parser.add_argument("--input-delay", type=int, default=0, help="input delay in frames (default 0)")
    parser.add_argument("--max-prediction", type=int, default=8, help="prediction window; 0 is lockstep (default 8)")
    parser.add_argument("--fps", type=int, default=60, help="frames per second (default 60)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        game_class = load_class(args.spec)
        config = parse_config(args.config)
        settings = {"input_delay": args.input_delay, "max_prediction": args.max_prediction, "fps": args.fps}
        peers = args.peers if args.peers is not None else min(2, len(game_class(config).players))
        started = time.perf_counter()
        report = run_sim_match(
            lambda _peer: game_class(config), peers=peers, profile=args.profile, frames=args.frames,
            seed=args.seed, settings=settings,
        )
        wall = time.perf_counter() - started
    except ValueError as error:
        print(f"coplay simulate: {error}")
        return 2
    summary = {**report.to_json(), "wall_seconds": round(wall, 3)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"converged: {'yes' if report.converged else 'NO'} ({report.reason})\n"
            f"frames: {report.frames} in {report.episodes} episode(s) x {report.peers} peer(s), "
            f"profile {report.profile}, seed {report.seed}\n"
            f"rollbacks: {report.rollbacks} ({report.rollbacks_per_100_frames} per 100 frames), "
            f"depth max {report.max_rollback_depth}, p99 {report.p99_rollback_depth}\n"
            f"stalls: {report.stalls}   desyncs: {report.desyncs}   checksums compared: {report.checked_frames}\n"
            f"virtual time: {report.virtual_seconds} s   wall time: {wall:.3f} s"
        )
    return 0 if report.converged else 1
