"""`coplay loadtest URL`: many headless participants through the whole flow, then a report.

Each participant (app/headless.py) enters with its own PROLIFIC_PID, answers every
scene, waits to be matched and plays its matches with the real netcode, relayed by
the server. They all run as threads of this process, starting together (or spread
over `--ramp` seconds), which is what stresses the server: many concurrent entries,
waiting rooms and match startups.

Only loopback URLs are allowed unless `--allow-remote`: a load test against someone
else's server is an attack. Exit status: 0 when every participant completed without a
desync, 1 when any failed, 2 for usage errors.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import secrets
import statistics
import sys
import threading
import time
import urllib.parse
from typing import Any, Callable, Sequence

from app.headless import HeadlessParticipant, ParticipantResult

PHASES = ("new", "entering", "connecting", "consent", "page", "survey", "waiting", "playing", "match_end",
          "done", "failed")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "loadtest", help="run many headless participants through the full flow and report",
        description="Start N headless participants against a running coplay server. Each walks the whole "
        "experiment (consent, pages, surveys, matches with the real netcode, end) and the run reports who "
        "completed, matches played, desyncs, disconnects and timings.",
    )
    parser.add_argument("url", metavar="URL", help="the experiment's root, e.g. http://127.0.0.1:5000")
    parser.add_argument("--participants", "-n", type=int, default=10, help="number of participants (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the survey answers and inputs (default 0)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds each participant may take for the whole flow (default 300)")
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="spread the starts evenly over this many seconds (default 0: all at once)")
    parser.add_argument("--policy", choices=("random", "idle"), default="random",
                        help="inputs in matches: sticky random actions or the default action (default random)")
    parser.add_argument("--json", metavar="FILE", help="also write the summary (and every participant's result) here")
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


def run(args: argparse.Namespace) -> int:
    problem = check_url(args.url, args.allow_remote)
    if problem is None and args.participants < 1:
        problem = "--participants must be at least 1"
    if problem is None and not args.timeout > 0:
        problem = "--timeout must be positive"
    if problem:
        print(f"coplay loadtest: {problem}", file=sys.stderr)
        return 2
    printer = (lambda line: print(line, flush=True)) if args.progress > 0 else None
    summary = run_loadtest(args.url, args.participants, seed=args.seed, timeout=args.timeout, ramp=args.ramp,
                           policy=args.policy, progress=printer, progress_every=args.progress)
    print(format_summary(summary))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=2)
    return 0 if summary["failed"] == 0 else 1


def run_loadtest(
    url: str,
    participants: int,
    seed: int = 0,
    timeout: float = 300.0,
    ramp: float = 0.0,
    policy: str = "random",
    progress: Callable[[str], None] | None = None,
    progress_every: float = 2.0,
) -> dict[str, Any]:
    """Run `participants` HeadlessParticipants concurrently (one thread each) and summarise."""
    tag = secrets.token_hex(4)   # platform ids must be new on every run, or the server refuses them
    people = [
        HeadlessParticipant(
            url, params={"PROLIFIC_PID": f"loadtest-{tag}-{i:04d}", "STUDY_ID": "coplay-loadtest", "SESSION_ID": tag},
            policy=policy, seed=seed * 1_000_003 + i,
        )
        for i in range(participants)
    ]
    results: list[ParticipantResult | None] = [None] * participants
    started = time.monotonic()

    def play(i: int) -> None:
        delay = ramp * i / participants if participants > 1 else 0.0
        time.sleep(delay)
        results[i] = people[i].run(timeout)

    threads = [threading.Thread(target=play, args=(i,), name=f"participant-{i}", daemon=True)
               for i in range(participants)]
    for thread in threads:
        thread.start()
    deadline = started + ramp + timeout + 30.0   # run() always returns by its timeout; this is a backstop
    last_line = started
    while time.monotonic() < deadline:
        alive = [t for t in threads if t.is_alive()]
        if not alive:
            break
        alive[0].join(timeout=min(1.0, progress_every) if progress else 1.0)
        if progress and time.monotonic() - last_line >= progress_every:
            last_line = time.monotonic()
            progress(progress_line(people, last_line - started))
    final = [r if r is not None else ParticipantResult(completed=False, reason="did not finish") for r in results]
    return summarise(url, final, time.monotonic() - started)


def progress_line(people: Sequence[HeadlessParticipant], elapsed: float) -> str:
    counts = {phase: 0 for phase in PHASES}
    for person in people:
        counts[person.phase] = counts.get(person.phase, 0) + 1
    shown = "  ".join(f"{phase} {n}" for phase, n in counts.items() if n)
    return f"loadtest {elapsed:6.1f}s  {len(people)} participants:  {shown}"


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "max": None}
    return {"mean": round(statistics.fmean(values), 3), "max": round(max(values), 3)}


def failure_reason(result: ParticipantResult) -> str | None:
    if not result.completed:
        return result.reason
    if result.desyncs:
        return f"{len(result.desyncs)} desync(s)"
    return None


def summarise(url: str, results: Sequence[ParticipantResult], wall: float) -> dict[str, Any]:
    """The JSON summary of a load test."""
    failures = [{"participant": i, "reason": reason} for i, r in enumerate(results)
                if (reason := failure_reason(r)) is not None]
    outcomes: dict[str, int] = {}
    for result in results:
        if result.completed:
            outcomes[str(result.outcome)] = outcomes.get(str(result.outcome), 0) + 1
    match_ids = {m["match"] for r in results for m in r.matches}
    match_ends: dict[str, int] = {}
    for r in results:
        for m in r.matches:
            key = str(m.get("reason"))
            match_ends[key] = match_ends.get(key, 0) + 1
    return {
        "url": url,
        "participants": len(results),
        "completed": sum(r.completed for r in results),
        "failed": len(failures),
        "failures": failures,
        "outcomes": outcomes,
        "matches": len(match_ids),
        "match_ends": match_ends,   # per participant-match: completed, partner_dropped, ...
        "episodes": sum(1 for r in results for e in r.episodes if e["status"] == "done"),
        "desyncs": sum(len(r.desyncs) for r in results),
        "disconnects": sum(len(r.disconnects) for r in results),
        "errors": sum(len(r.errors) for r in results),
        "rollbacks": sum(r.stats.get("rollbacks", 0) for r in results),
        "stalls": sum(r.stats.get("stalls", 0) for r in results),
        "max_rollback_depth": max((r.stats.get("max_rollback_depth", 0) for r in results), default=0),
        "connect_seconds": _spread([r.connect_seconds for r in results if r.connect_seconds is not None]),
        "waiting_seconds": _spread([w for r in results for w in r.waiting_seconds]),
        "first_frame_seconds": _spread([w for r in results for w in r.first_frame_seconds]),
        "wall_seconds": round(wall, 3),
        "results": [r.to_json() for r in results],
    }


def format_summary(summary: dict[str, Any]) -> str:
    def spread(key: str) -> str:
        s = summary[key]
        return "n/a" if s["mean"] is None else f"mean {s['mean']:.3f} s, max {s['max']:.3f} s"

    lines = [(
        f"participants: {summary['participants']} started, {summary['completed']} completed, "
        f"{summary['failed']} failed   ({summary['wall_seconds']:.1f} s)"
    )]
    reasons: dict[str, int] = {}
    for failure in summary["failures"]:
        reasons[failure["reason"]] = reasons.get(failure["reason"], 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        lines.append(f"  failed x{count}: {reason}")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items())) or "none"
    ends = ", ".join(f"{k} {v}" for k, v in sorted(summary["match_ends"].items())) or "none"
    lines += [
        f"outcomes: {outcomes}",
        f"matches: {summary['matches']} played ({ends}), episodes finished {summary['episodes']}",
        f"desyncs: {summary['desyncs']}   disconnects: {summary['disconnects']}   errors: {summary['errors']}",
        f"rollbacks: {summary['rollbacks']} (max depth {summary['max_rollback_depth']})   stalls: {summary['stalls']}",
        f"time to connect: {spread('connect_seconds')}",
        f"time in waiting room: {spread('waiting_seconds')}",
        f"match start to first frame: {spread('first_frame_seconds')}",
    ]
    return "\n".join(lines)
