"""How many concurrent 2-player 60 fps Pong matches one server process holds on this machine.

    python benchmarks/capacity.py [--start 5] [--step 5] [--max 200] [--seconds 30]
                                  [--async-mode eventlet | --modes eventlet,gevent,threading]
                                  [--processes 2] [--max-relay-p99-ms 20] [--rtt-source server|client|both]

For M = start, start + step, ... it starts a fresh `coplay serve` (benchmarks/experiments/
pong_capacity.py: one Pong match of `--seconds`, no other scenes) and runs
`coplay loadtest URL --participants 2M --arrival burst --processes P`, then prints one row:
matches, completed, disconnects, relay round trip p50/p99 seen by the participants, the
server's own relay p99 (its coplay_relay_seconds histogram), server CPU % and CPU µs per
relayed packet. M passes with zero disconnects, zero failed participants, zero desyncs
and a relay p99 under `--max-relay-p99-ms`. The search stops at the first M that fails
and prints "max matches held: K" (the last M that passed; 0 if none did).

Relay p99 is, by default (`server`), the server's own relay p99: the time a packet spends
in the server, from its /metrics histogram. `client` uses the participants' relay round
trip p99 instead (the netcode ping, which leaves out the time a peer holds a packet before
echoing it), `both` the larger of the two. The round trip also holds the load generator's
own scheduling delays: with the generator on the same few cores it passes 20 ms at a
handful of matches while the server's relay p99 is under a millisecond, so use `client`
or `both` only where the generator has cores of its own. Both are always printed.

The load generator (2M headless participants running the real netcode in CPython)
shares the machine with the server, so on a small machine it may saturate first: the
answer is then a lower bound for the server. `--modes` repeats the search per async mode
and ends with a comparison table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server_fixtures import Server  # noqa: E402

EXPERIMENT = ROOT / "benchmarks" / "experiments" / "pong_capacity.py"
FPS = 60
MODES = ("eventlet", "gevent", "threading")
GENERATOR_SLOWDOWN = 1.25   # a run whose matches take longer than this factor did not offer 60 fps


@dataclass
class Row:
    """One load-test run at M matches."""

    matches_asked: int
    summary: dict[str, Any]
    error: str | None = None

    def get(self, *keys: str) -> Any:
        value: Any = self.summary
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def server_relay_p99_ms(self) -> float | None:
        seconds = self.get("server", "relay_seconds_p99")
        return None if not isinstance(seconds, (int, float)) else seconds * 1000

    def relay_p99_ms(self, source: str) -> float | None:
        """The relay p99 the pass criterion uses (see the module doc)."""
        server = self.server_relay_p99_ms()
        client = self.get("relay_rtt_ms", "p99")
        candidates = {"server": [server], "client": [client], "both": [server, client]}[source]
        known = [float(c) for c in candidates if isinstance(c, (int, float))]
        return max(known) if known else None

    def behind(self, seconds: float) -> str | None:
        """Whether the load generator could not keep 60 fps: the matches took much longer than they
        should (the netcode stalls when a peer falls behind), so M matches were not really offered."""
        wall = self.get("wall_seconds")
        if isinstance(wall, (int, float)) and wall > seconds * GENERATOR_SLOWDOWN + 5:
            return f"load generator fell behind: the {seconds:g} s matches took {wall:.0f} s"
        return None

    def problems(self, max_p99_ms: float, source: str) -> list[str]:
        """Why this run fails the criteria (empty when it passes)."""
        if self.error:
            return [self.error]
        found = [f"{self.get(key)} {key}" for key in ("disconnects", "failed", "desyncs") if self.get(key)]
        p99 = self.relay_p99_ms(source)
        if p99 is None:
            found.append("no relay p99 measured")
        elif p99 >= max_p99_ms:
            found.append(f"relay p99 {p99:.1f} ms >= {max_p99_ms:g} ms")
        return found


def fmt(value: Any, digits: int = 1) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


HEADER = (f"{'M':>5} {'matches':>7} {'done':>9} {'disc':>5} {'rtt p50':>8} {'rtt p99':>8} {'relay p99':>9} "
          f"{'cpu %':>6} {'cpu max':>7} {'us/pkt':>7}  verdict")


def format_row(row: Row, max_p99_ms: float, source: str, seconds: float | None = None) -> str:
    problems = row.problems(max_p99_ms, source)
    behind = row.behind(seconds) if seconds and not problems else None
    done = f"{row.get('completed') or 0}/{row.get('participants') or 2 * row.matches_asked}"
    return (f"{row.matches_asked:>5} {row.get('matches') or 0:>7} {done:>9} {row.get('disconnects') or 0:>5} "
            f"{fmt(row.get('relay_rtt_ms', 'p50')):>8} {fmt(row.get('relay_rtt_ms', 'p99')):>8} "
            f"{fmt(row.server_relay_p99_ms(), 2):>9} {fmt(row.get('server', 'cpu_percent_mean')):>6} "
            f"{fmt(row.get('server', 'cpu_percent_max')):>7} {fmt(row.get('server', 'cpu_us_per_relayed_packet'), 0):>7}  "
            + ("FAIL: " + "; ".join(problems) if problems else f"not 60 fps: {behind}" if behind else "ok"))


def run_once(matches: int, mode: str, args: argparse.Namespace, folder: Path) -> Row:
    """A fresh server in `mode` and one load test of `matches` matches against it."""
    run_dir = folder / f"{mode}-{matches}"
    env = {"COPLAY_CAPACITY_FRAMES": str(int(args.seconds * FPS))}
    try:
        server = Server(["serve", str(EXPERIMENT), "--async-mode", mode], run_dir / "data", env=env)
    except BaseException as error:   # Server reports a failed start with pytest.fail (an OutcomeException)
        if isinstance(error, KeyboardInterrupt):
            raise
        return Row(matches, {}, f"the server did not start: {str(error).strip().splitlines()[0]}")
    summary_file = run_dir / "summary.json"
    command = [sys.executable, "-m", "app.cli", "loadtest", server.url, "--participants", str(2 * matches),
               "--arrival", "burst", "--processes", str(args.processes), "--json", str(summary_file),
               "--progress", "0", "--timeout", str(args.seconds + args.slack)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=args.seconds + 2 * args.slack)
    except subprocess.TimeoutExpired:
        return Row(matches, {}, "the load test did not finish in time")
    finally:
        server.stop()
    if not summary_file.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return Row(matches, {}, f"the load test wrote no summary: {tail[0]}")
    return Row(matches, json.loads(summary_file.read_text()))


def search(mode: str, args: argparse.Namespace, folder: Path) -> tuple[int, Row | None]:
    """Raise M until a run fails; (largest M that passed, its row)."""
    print(f"\nasync mode {mode}: {args.seconds:g} s matches at {FPS} fps, {args.processes} load processes, "
          f"relay p99 < {args.max_relay_p99_ms:g} ms ({args.rtt_source})", flush=True)
    print(HEADER, flush=True)
    best, best_row, note = 0, None, ""
    matches = args.start
    while matches <= args.max:
        started = time.monotonic()
        row = run_once(matches, mode, args, folder)
        print(format_row(row, args.max_relay_p99_ms, args.rtt_source, args.seconds)
              + f"   ({time.monotonic() - started:.0f} s)", flush=True)
        if row.problems(args.max_relay_p99_ms, args.rtt_source):
            break
        if row.behind(args.seconds):
            note = f" (a lower bound: the load generator could not offer {matches} matches at {FPS} fps)"
            break
        best, best_row = matches, row
        matches += args.step
    else:
        note = f" (search stopped at --max {args.max})"
    print(f"max matches held: {best}{note}", flush=True)
    return best, best_row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=int, default=5, help="matches in the first run (default 5)")
    parser.add_argument("--step", type=int, default=5, help="matches added per run (default 5)")
    parser.add_argument("--max", type=int, default=200, help="stop searching above this many matches (default 200)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each match (default 30)")
    parser.add_argument("--slack", type=float, default=120.0,
                        help="seconds allowed for arrival, pairing and shutdown on top of the match (default 120)")
    parser.add_argument("--processes", type=int, default=2, help="load-test worker processes (default 2)")
    parser.add_argument("--async-mode", choices=MODES, default="eventlet", help="server async mode (default eventlet)")
    parser.add_argument("--modes", help="comma-separated async modes to compare, e.g. eventlet,gevent,threading")
    parser.add_argument("--max-relay-p99-ms", type=float, default=20.0, help="relay p99 limit (default 20)")
    parser.add_argument("--rtt-source", choices=("server", "client", "both"), default="server",
                        help="which relay p99 the limit applies to (default server; see the module doc)")
    parser.add_argument("--keep", metavar="DIR", help="keep servers' data, logs and summaries here")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()] if args.modes else [args.async_mode]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown async mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if args.start < 1 or args.step < 1:
        parser.error("--start and --step must be at least 1")
    with tempfile.TemporaryDirectory(prefix="coplay-capacity-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        results = {mode: search(mode, args, folder) for mode in modes}
    if len(modes) > 1:
        print(f"\n{'mode':<10} {'max matches':>11} {'cpu % at max':>12} {'us/pkt at max':>13} {'relay p99 ms':>12}")
        for mode, (best, row) in results.items():
            at = row or Row(0, {})
            print(f"{mode:<10} {best:>11} {fmt(at.get('server', 'cpu_percent_mean')):>12} "
                  f"{fmt(at.get('server', 'cpu_us_per_relayed_packet'), 0):>13} {fmt(at.server_relay_p99_ms(), 2):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
