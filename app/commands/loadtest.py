"""`coplay loadtest URL`: many headless participants through the full flow, then a report.

Each participant (app/participant/headless.py) enters with its own PROLIFIC_PID, answers every
scene, waits to be matched and plays its matches with the real netcode and random
inputs, relayed by the server. They arrive all at once (`--arrival burst`), evenly over
some seconds (`ramp:SECONDS`) or as a Poisson process (`poisson:RATE`), run as threads
of this process or of `--processes K` worker processes, optionally behind a simulated
client-side network (`--profile`). The run stops by itself (at the latest after
`--duration` seconds) and reports from every participant and from the server's own
`/metrics` endpoint (app/loadtest/).

`--mode full` (the default) runs every participant's real netcode and checks correctness (desyncs,
rollbacks); `--mode wire` plays matches at the protocol level, many participants per process on one
asyncio loop (app/loadtest/wire.py), so a generator core offers far more matches: it is the mode
for capacity (benchmarks/capacity.py). Both measure the generator itself (app/loadtest/selfcheck.py):
when its ticks ran late the verdict is INCONCLUSIVE, "the load generator, not the server, was the
bottleneck".

Only loopback URLs are allowed unless `--allow-remote`: a load test against someone
else's server is an attack. Exit status: 0 when every participant completed (or was
dropped on purpose) without a desync, 1 when some failed while the generator kept up (FAIL),
3 when some failed while the generator was the bottleneck (INCONCLUSIVE), 2 for usage errors.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Callable, TextIO

from app.loadtest.arrival import Arrival, parse_arrival
from app.loadtest.run import MODES, LoadtestPlan, run_plan
from app.loadtest.summary import failure_reason, format_summary, summarise  # noqa: F401 - re-exported
from netcode.sim import PROFILES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "loadtest", help="run many headless participants through the full flow and report",
        description="Start N headless participants against a running coplay server. Each walks the whole "
        "experiment (consent, pages, surveys, matches with the real netcode, end) and the run reports who "
        "completed, disconnects, desyncs, timings, relay round trips, rollbacks and the server's CPU and memory.",
    )
    parser.add_argument("url", metavar="URL", help="the experiment's root, e.g. http://127.0.0.1:5000")
    parser.add_argument("--participants", "-n", type=int, default=10, help="number of participants (default 10)")
    parser.add_argument("--arrival", default=None, metavar="burst|ramp:SECONDS|poisson:RATE",
                        help="when participants start: all at once (burst, default), evenly over SECONDS, or a "
                        "Poisson process of RATE arrivals per second (seeded)")
    parser.add_argument("--ramp", type=float, default=None, metavar="SECONDS", help="same as --arrival ramp:SECONDS")
    parser.add_argument("--duration", type=float, default=600.0,
                        help="hard stop for the whole run in seconds; participants still running then are "
                        "disconnected and counted as failed (default 600)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="client-side network: delay, drop, duplicate and reorder every participant's netcode "
                        "packets both ways like this netcode.sim profile (default: no shaping)")
    parser.add_argument("--mode", choices=MODES, default="full",
                        help="full: participants run the real netcode (checks correctness; default); wire: "
                        "protocol-level participants, many per process on one asyncio loop (offers far more "
                        "matches per core; for capacity)")
    parser.add_argument("--processes", type=int, default=None,
                        help="spread participants over this many worker processes (default: the number of "
                        f"cores, {os.cpu_count() or 1} here)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the schedule, survey answers, inputs and network (default 0)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds each participant may take for the whole flow (default 300)")
    parser.add_argument("--policy", choices=("random", "idle"), default="random",
                        help="inputs in matches: sticky random actions or the default action (default random)")
    parser.add_argument("--drop-fraction", type=float, default=0.0, metavar="F",
                        help="for testing resilience: this fraction of participants (chosen by seed) vanish "
                        "mid-match without a goodbye; counted as dropped, not failed (default 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the summary (and every participant's result) here")
    parser.add_argument("--report", metavar="DIR", help="write an HTML report (index.html) into this folder")
    parser.add_argument("--browsers", type=int, default=0, metavar="M",
                        help="also open M headless Chromium pages on autopilot at once (the Pyodide start-up "
                        "storm): reports their Pyodide start times and disconnects; needs Playwright (default 0)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a URL that is not on this machine")
    parser.add_argument("--progress", type=float, default=2.0,
                        help="seconds between progress lines; 0 for none (default 2)")
    parser.set_defaults(func=run)


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs whose host is localhost or a loopback address (127.0.0.0/8, ::1)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return False
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_remote: bool) -> str | None:
    """Why `url` may not be load-tested (None when it may)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL such as http://127.0.0.1:5000"
    if not allow_remote and not is_loopback_url(url):
        return (f"{parts.hostname} is not this machine; load-test only servers you run "
                "(pass --allow-remote if this one is yours)")
    return None


def plan_from_args(args: argparse.Namespace) -> LoadtestPlan:
    """The run the arguments ask for; ValueError saying what is wrong with them."""
    problem = check_url(args.url, args.allow_remote)
    if problem:
        raise ValueError(problem)
    if args.participants < 1:
        raise ValueError("--participants must be at least 1")
    for name in ("timeout", "duration"):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name} must be positive")
    processes = args.processes if args.processes is not None else (os.cpu_count() or 1)
    if processes < 1:
        raise ValueError("--processes must be at least 1")
    mode = getattr(args, "mode", "full")
    if mode == "wire" and (args.profile or args.drop_fraction):
        raise ValueError("--profile and --drop-fraction need --mode full (wire participants neither shape "
                         "their link nor drop)")
    if not 0.0 <= args.drop_fraction <= 1.0:
        raise ValueError("--drop-fraction must be between 0 and 1")
    if args.arrival is not None and args.ramp is not None:
        raise ValueError("give --arrival or --ramp, not both")
    arrival = parse_arrival(args.arrival) if args.arrival is not None else (
        parse_arrival(f"ramp:{args.ramp}") if args.ramp is not None else Arrival("burst"))
    return LoadtestPlan(
        url=args.url, participants=args.participants, seed=args.seed, timeout=args.timeout, arrival=arrival,
        duration=args.duration, profile=args.profile, processes=min(processes, args.participants),
        policy=args.policy, drop_fraction=args.drop_fraction, mode=mode,
    )


class ProgressPrinter:
    """Progress lines: overwritten in place on a terminal, one per line otherwise (CI logs)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._width = 0

    def __call__(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def write_outputs(summary: dict[str, Any], json_path: str | None, report_dir: str | None) -> None:
    """The HTML report (app.loadtest.report) into `report_dir`, then the JSON summary."""
    if report_dir:
        from app.loadtest.report import write_report

        summary["report"] = str(write_report(summary, report_dir))
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2))


def run(args: argparse.Namespace) -> int:
    try:
        plan = plan_from_args(args)
    except ValueError as error:
        print(f"coplay loadtest: {error}", file=sys.stderr)
        return 2
    join_browsers = None
    if getattr(args, "browsers", 0):
        from app.loadtest.browsers import BrowsersUnavailable, run_in_background

        if args.browsers < 0:
            raise BrowsersUnavailable("--browsers must be 0 or more")
        join_browsers = run_in_background(args.url, args.browsers, args.timeout, args.seed)
    printer = ProgressPrinter() if args.progress > 0 else None
    try:
        summary = run_plan(plan, progress=printer, progress_every=args.progress)
    finally:
        if printer is not None:
            printer.end()
    if join_browsers is not None:
        from app.loadtest.browsers import format_browsers

        summary["browsers"] = join_browsers()
    write_outputs(summary, args.json, args.report)
    print(format_summary(summary))
    if join_browsers is not None:
        print(format_browsers(summary["browsers"]))
    if summary["failed"] == 0 and not summary.get("browsers", {}).get("failures"):
        return 0
    return 3 if summary.get("verdict") == "INCONCLUSIVE" else 1


def run_loadtest(
    url: str,
    participants: int,
    seed: int = 0,
    timeout: float = 300.0,
    ramp: float = 0.0,
    policy: str = "random",
    progress: Callable[[str], None] | None = None,
    progress_every: float = 2.0,
    **plan: Any,
) -> dict[str, Any]:
    """Run a load test from Python (tests, notebooks) and return its summary; `plan` takes the other
    LoadtestPlan fields (arrival, duration, profile, processes, drop_fraction, ...)."""
    if ramp and "arrival" not in plan:
        plan["arrival"] = Arrival("ramp", ramp)
    return run_plan(LoadtestPlan(url=url, participants=participants, seed=seed, timeout=timeout, policy=policy,
                                 **plan), progress=progress, progress_every=progress_every)
