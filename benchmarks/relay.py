"""The server's relay path: µs per packet through `MatchRoom.relay`, with and without its metrics.

    python benchmarks/relay.py [--packets N] [--window W] [--repeat R] [--profile] [--baseline DIR]

Two seats of a Pong match send each other input packets shaped like the netcode's
(every packet resends the last W unacknowledged inputs and the 4 latest checksums), as
at 60 fps. Each packet goes through the room's relay into a real recording file and a
host that only counts. "now" is `MatchRoom.relay` as the server runs it; "without its
metrics" swaps the room's metrics for no-ops, to show what they cost. `--profile`
prints cProfile's top functions. `--baseline DIR` runs this benchmark against this checkout's code and
against DIR's (an older checkout of coplay, e.g. `git worktree add /tmp/base COMMIT`) in turns, each turn a
fresh process, and prints both side by side: best of R turns each, so that load from elsewhere hits both
alike. Times are the process's CPU time (not wall time), which a busy machine disturbs less; still, the
figures are CPU-bound and single-threaded: run on a quiet machine for figures to quote.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The code measured: this checkout's, or (a --baseline turn) the older checkout's named by this variable.
sys.path.insert(0, os.environ.get("COPLAY_RELAY_BENCH_CODE") or str(Path(__file__).resolve().parent.parent))

from app.live.match_room import HUMAN, MatchRoom, MatchSettings, Seat  # noqa: E402
from app.live.protocol import PacketEvent  # noqa: E402
from app.data.recording import RecordingWriter, make_header  # noqa: E402
from game.games.pong import Pong  # noqa: E402
from game.rng import Rng  # noqa: E402
from game.spaces import Discrete  # noqa: E402
from netcode import codec  # noqa: E402


class CountingHost:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, seat: Seat, event: str, payload: dict[str, Any]) -> None:
        self.sent += 1

    def start_bot(self, room: MatchRoom, seat: Seat, preload: Any) -> Any:
        raise AssertionError("no bots here")

    def match_ended(self, room: MatchRoom, reason: str) -> None:
        pass

    def log_event(self, room: MatchRoom, kind: str, data: dict[str, Any]) -> None:
        pass

    def settle(self, room: MatchRoom) -> None:
        """The server runs its re-simulation (the referee) in a background task; here it runs inline,
        so its cost counts in the figures."""
        while room.referee_work(256):
            pass

    def now(self) -> float:
        return 0.0


def make_room(folder: str, name: str) -> tuple[MatchRoom, CountingHost]:
    host = CountingHost()
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="pa"), "s1": Seat("s1", ("right",), HUMAN, participant="pb")}
    settings = MatchSettings(
        game="game.games.pong:Pong", config={}, players=("left", "right"),
        action_spaces={"left": Discrete(3), "right": Discrete(3)}, episodes=1, fps=60, netcode={}, keys={},
        on_partner_drop="end", fill_policy="random",
    )
    header = make_header(match="m1", experiment="bench", scene="pong", created_at="now", game=settings.game,
                         game_source="", config={}, players=["left", "right"], seats={}, netcode={}, fps=60)
    room = MatchRoom("m1", "pong", settings, seats, host, RecordingWriter(os.path.join(folder, name), header),
                     seed=7, game_class=Pong)
    room.start_next_episode()
    return room, host


def packets(count: int, window: int) -> list[tuple[str, PacketEvent]]:
    """(sender addr, event) pairs alternating between the seats, one frame per pair."""
    rng = Rng(1)
    actions = {"left": [], "right": []}
    out = []
    for i in range(count):
        frame, (addr, to, player, other) = i // 2, (("s0", "s1", "left", "right") if i % 2 == 0
                                                    else ("s1", "s0", "right", "left"))
        if len(actions[player]) <= frame:
            actions[player].append(rng.randbelow(3) if rng.randbelow(8) == 0 or not actions[player]
                                   else actions[player][-1])
        start = max(0, frame - window + 1)
        check_frames = [f for f in range(max(0, frame - 2) // 10 * 10, -1, -10)][:4]
        data = codec.input_packet(
            gen=0, peer_gen=0, frame=frame, adv=0.5, t=1000.0 + frame * 16.7, echo=990.25, hold=3.5,
            inputs={player: (start, actions[player][start:frame + 1])}, ack={other: max(-1, frame - 3)},
            checks=[(f, f"{f * 2654435761 % (1 << 64):016x}") for f in check_frames], gone={})
        out.append((addr, PacketEvent("m1", 0, to, data)))
    return out


class NoMetrics:
    """Stands in for app.live.metrics.Metrics, to show what the relay's own figures cost."""

    class _Histogram:
        @staticmethod
        def observe(value: float) -> None:
            pass

    clock = staticmethod(time.perf_counter)
    first_packet_seconds = _Histogram()

    def relayed(self, chars: int, started: float) -> None:
        pass


def run(style: str, stream: list[tuple[str, PacketEvent]], folder: str) -> tuple[float, int]:
    room, host = make_room(folder, f"{style}-{time.monotonic_ns()}.jsonl")
    if style == "now-no-metrics":
        room.metrics = NoMetrics()  # type: ignore[assignment]
    relay = room.relay
    seats = room.seats
    started = time.process_time()
    for addr, event in stream:
        relay(seats[addr], event)
    elapsed = time.process_time() - started
    room.recording.close()
    return elapsed / len(stream) * 1e6, host.sent


ROOT = Path(__file__).resolve().parent.parent


def run_checkout(folder: Path, packets: int, window: int) -> dict[str, float]:
    """One turn of this benchmark measuring the code of checkout FOLDER, in a process of its own:
    {"now": µs, "now-no-metrics": µs}."""
    command = [sys.executable, str(Path(__file__).resolve()), "--packets", str(packets),
               "--window", str(window), "--repeat", "1"]
    env = {**os.environ, "PYTHONPATH": str(folder), "COPLAY_RELAY_BENCH_CODE": str(folder)}
    output = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, check=True).stdout
    figures = dict(re.findall(r"^  (now|now without its metrics) +([0-9.]+) µs/packet", output, re.MULTILINE))
    return {"now": float(figures["now"]), "now-no-metrics": float(figures["now without its metrics"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=40_000)
    parser.add_argument("--window", type=int, default=6, help="inputs resent per packet (default 6)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="an older checkout whose own benchmarks/relay.py runs in turns with this one")
    args = parser.parse_args(argv)
    stream = packets(args.packets, args.window)
    chars = sum(len(e.data) for _, e in stream) / len(stream)
    best: dict[str, float] = {}
    before: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            run("now", stream, folder)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        for _ in range(args.repeat):
            if args.baseline:
                for figures, checkout in ((best, ROOT), (before, args.baseline)):
                    for style, us in run_checkout(checkout, args.packets, args.window).items():
                        figures[style] = min(figures.get(style, us), us)
                continue
            for style in ("now", "now-no-metrics"):
                us, sent = run(style, stream, folder)
                assert sent == len(stream) + 2, (style, sent)  # + the two match_start
                best[style] = min(best.get(style, us), us)
    print(f"relay of {args.packets} packets ({chars:.0f} chars, {args.window} inputs each), best of {args.repeat}:")
    if args.baseline:
        print(f"  {'':23} {'now':>7}   {'baseline':>8}   (baseline: {args.baseline})")
        for style, label in (("now", "with its metrics"), ("now-no-metrics", "without its metrics")):
            print(f"  {label:23} {best[style]:7.2f}   {before[style]:8.2f}   µs/packet   "
                  f"({best[style] - before[style]:+.2f} µs)")
        print(f"  metrics cost            {best['now'] - best['now-no-metrics']:7.2f}   "
              f"{before['now'] - before['now-no-metrics']:8.2f}   µs/packet")
    else:
        print(f"  now                     {best['now']:7.2f} µs/packet")
        print(f"  now without its metrics {best['now-no-metrics']:7.2f} µs/packet   "
              f"(metrics cost {best['now'] / best['now-no-metrics']:.2f}x)")
    print("The relay core is a few per cent of the server's cost per packet; the Socket.IO stack is the rest:\n"
          "python benchmarks/async_modes.py --baseline compares the whole server per relayed packet.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
