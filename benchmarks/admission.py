"""Admission control under a burst: the demo with new matches held while the server lags, and without.

    python benchmarks/admission.py [--participants N] [--arrival burst|ramp:S] [--max-relay-lag-ms MS]

Runs `coplay demo` twice, with admission control (`--max-relay-lag-ms`, default 150) and with it off
(0), each under the same load test of N headless participants, and prints side by side: participants
completed, Socket.IO disconnects, partner seats lost mid-match, relay round trip p50/p99, time in the
waiting room p50/p99, and the server's admission figures from GET /metrics (times closed, match starts
held, worst lag seen by the probe in the last window at the end). The load generator shares the
machine with the server: on a busy machine both rows suffer, so compare them on a quiet one.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.commands.loadtest import run_loadtest  # noqa: E402
from app.live.admission import DEFAULT_MAX_LAG_MS  # noqa: E402
from app.live.metrics import parse_metrics  # noqa: E402
from app.loadtest.arrival import parse_arrival  # noqa: E402
from tests.server_fixtures import Server  # noqa: E402


def run(max_lag_ms: float, participants: int, arrival: str, folder: Path) -> dict[str, Any]:
    server = Server(["demo", "--max-relay-lag-ms", f"{max_lag_ms:g}"], folder / f"lag-{max_lag_ms:g}")
    try:
        summary = run_loadtest(server.url, participants, timeout=600, progress=None, arrival=parse_arrival(arrival))
        samples = parse_metrics(requests.get(server.url + "/metrics", timeout=10).text)
    finally:
        server.stop()
    return {"summary": summary, "closes": samples[("coplay_admission_closes_total", ())],
            "held": samples[("coplay_admission_held_starts_total", ())]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", "-n", type=int, default=30)
    parser.add_argument("--arrival", default="burst", help="burst (default) or ramp:SECONDS")
    parser.add_argument("--max-relay-lag-ms", type=float, default=DEFAULT_MAX_LAG_MS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        rows = [(f"admission {args.max_relay_lag_ms:g} ms", run(args.max_relay_lag_ms, args.participants,
                                                                args.arrival, Path(folder))),
                ("admission off", run(0, args.participants, args.arrival, Path(folder)))]
    print(f"{args.participants} participants, arrival {args.arrival}, `coplay demo`")
    print(f"{'':<22} {'done':>5} {'disconn':>8} {'seats lost':>10} {'rtt p50/p99 ms':>16} {'wait p50/p99 s':>15} "
          f"{'closes':>7} {'held':>5}")
    for name, row in rows:
        s = row["summary"]
        rtt, wait = s["relay_rtt_ms"], s["waiting_seconds"]
        print(f"{name:<22} {s['completed']:>5} {s['disconnects']:>8} {s['partner_drops']:>10} "
              f"{rtt['p50']!s:>7}/{rtt['p99']!s:<8} {wait['p50']!s:>7}/{wait['p99']!s:<7} "
              f"{row['closes']:>7.0f} {row['held']:>5.0f}")
    print("(the load generator shares this machine with the server: redo on a quiet machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
