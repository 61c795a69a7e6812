"""What one wire-level load-generator match costs in CPU, without the network.

    python benchmarks/wire_generator.py [--seconds 30] [--repeat 3]

Two WireSeats (app/loadtest/wire_match.py) of a 60 fps Pong match, sharing one MatchSim, hand their
packets to each other in memory for `--seconds` of frames. Prints, as the median of `--repeat` runs:
the lockstep re-simulation's cost per frame (step, plus a checksum every 10th frame and at the end),
the seats' cost per packet built and sent, per packet received, and the whole match per second of
play, so how many matches one generator core could offer before any transport cost (python-socketio
or the match channel's aiohttp WebSocket adds its own per packet; `coplay loadtest` reports the total
as "us cpu per packet").
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.loadtest.wire_match import MatchSim, WireSeat  # noqa: E402
from app.participant.answers import Policy  # noqa: E402
from game.games.pong import Pong  # noqa: E402
from netcode.config import SessionConfig  # noqa: E402

FPS = 60


def one_match(frames: int) -> dict[str, float]:
    config = {"max_score": 1_000_000, "max_frames": frames}
    env = Pong(config)
    session = SessionConfig.for_env(env, fps=FPS)
    sim = MatchSim(Pong(config), 7, env.players, session.desync_interval)
    seats = {}
    for i, (addr, player) in enumerate((("s0", "left"), ("s1", "right"))):
        start = {"match": "m", "episode": 0, "seat": addr, "gen": 0, "players": [player],
                 "peers": {"s1" if addr == "s0" else "s0": ["right" if player == "left" else "left"]}}
        seats[addr] = WireSeat(start, session, Policy("random", env, [player], seed=i), sim)
    sim_seconds = tick_seconds = receive_seconds = 0.0
    sent = received = 0
    run = sim.run
    sim.run = lambda: None   # timed separately below
    for tick in range(frames + 30):
        now = tick * 1000 / FPS
        for addr, seat in seats.items():
            began = time.process_time()
            out = seat.tick(now)
            tick_seconds += time.process_time() - began
            sent += len(out)
            for to, data in out:
                began = time.process_time()
                seats[to].receive(addr, data, now + 1)
                receive_seconds += time.process_time() - began
                received += 1
        began = time.process_time()
        run()
        sim_seconds += time.process_time() - began
        for seat in seats.values():
            seat._check_end()
        if all(s.done for s in seats.values()):
            break
    assert sim.ended_at == frames and all(s.done for s in seats.values())
    total = sim_seconds + tick_seconds + receive_seconds
    return {"sim_us_per_frame": 1e6 * sim_seconds / frames, "us_per_packet_sent": 1e6 * tick_seconds / sent,
            "us_per_packet_received": 1e6 * receive_seconds / received,
            "cpu_ms_per_match_second": 1e3 * total / (frames / FPS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="match length (default 30)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is printed (default 3)")
    args = parser.parse_args(argv)
    runs = [one_match(int(args.seconds * FPS)) for _ in range(args.repeat)]
    figures = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(f"lockstep re-simulation: {figures['sim_us_per_frame']:.1f} us per frame (one per match)")
    print(f"wire seat: {figures['us_per_packet_sent']:.1f} us per packet built and sent, "
          f"{figures['us_per_packet_received']:.1f} us per packet received")
    per_match = figures["cpu_ms_per_match_second"]
    print(f"one match: {per_match:.2f} ms cpu per second of play -> about {1000 / per_match:.0f} matches per "
          "generator core before transport costs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
