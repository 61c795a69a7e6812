"""The load test's JSON summary, built from every participant's `ParticipantResult`, and its text form.

Counting rules: a participant `completed` when it reached the end scene; `dropped` when
it was told to vanish mid-match (`--drop-fraction`) and did (not a failure); every
other one is `failed`, with its reason. A completed participant fails too when it saw
a desync, when one of its matches ended in `error` (`match_errors`), or when the server
gave its own seat to an AI and moved it on (`seats_taken_over`). `disconnects` counts
Socket.IO connections the server or the network closed on a participant; partners
whose seats dropped (held for them, or given to an AI) are `partner_drops` (expected when
partners drop on purpose).
"""
from __future__ import annotations

import statistics
from dataclasses import fields
from typing import Any, Iterable, Mapping, Sequence

from app.participant.result import SEAT_TAKEN_OVER, ParticipantResult
from app.loadtest.charts import percentile   # linear interpolation, as the report uses

MAX_SAMPLES = 20_000   # raw values kept per metric for the report


def distribution(values: Sequence[float], digits: int = 3) -> dict[str, float | int | None]:
    """mean, p50, p95, p99, max and the number of samples."""
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    return {
        "mean": r(statistics.fmean(values)) if values else None,
        "p50": r(percentile(values, 50)), "p95": r(percentile(values, 95)), "p99": r(percentile(values, 99)),
        "max": r(max(values)) if values else None, "samples": len(values),
    }


def result_from_json(data: Mapping[str, Any]) -> ParticipantResult:
    """A ParticipantResult back from `to_json()` (results cross process boundaries as JSON)."""
    return ParticipantResult(**{f.name: data[f.name] for f in fields(ParticipantResult) if f.name in data})


def failure_reason(result: ParticipantResult) -> str | None:
    """Why a participant counts as failed; None when it completed cleanly or was dropped on purpose."""
    if result.dropped and not result.completed:
        return None
    if not result.completed:
        return result.reason
    if result.desyncs:
        return f"{len(result.desyncs)} desync(s)"
    ends = [m.get("reason") for m in result.matches]
    if "error" in ends:
        return "match ended in error"
    if SEAT_TAKEN_OVER in ends:
        return "seat taken over"
    if "away" in ends:   # the server gave the seat to an AI: the participant was silent too long
        return "seat taken over (away)"
    return None


def outcome_counts(results: Iterable[ParticipantResult]) -> dict[str, int]:
    """completed, failed, dropped (on purpose), disconnects, desyncs, match_errors and seats_taken_over
    (participants with a match that ended so) over `results`."""
    out = {"completed": 0, "failed": 0, "dropped": 0, "disconnects": 0, "desyncs": 0, "match_errors": 0,
           "seats_taken_over": 0}
    for r in results:
        ends = {m.get("reason") for m in r.matches}
        out["completed"] += r.completed
        out["failed"] += failure_reason(r) is not None
        out["dropped"] += r.dropped and not r.completed
        out["disconnects"] += r.reason.startswith("disconnected")
        out["desyncs"] += len(r.desyncs)
        out["match_errors"] += "error" in ends
        out["seats_taken_over"] += SEAT_TAKEN_OVER in ends or "away" in ends
    return out


def _count(keys: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return counts


def _cap(values: list[float]) -> list[float]:
    return values[:MAX_SAMPLES]


def summarise(url: str, results: Sequence[ParticipantResult], wall: float,
              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON summary of a load test; `extra` (arrival, profile, server, timeline, ...) is merged in."""
    failures: list[dict[str, Any]] = [{"participant": i, "reason": reason} for i, r in enumerate(results)
                                      if (reason := failure_reason(r)) is not None]
    stat = lambda key: sum(r.stats.get(key, 0) for r in results)  # noqa: E731
    frames, rollbacks, stalls = stat("frames"), stat("rollbacks"), stat("stalls")
    play_minutes = stat("play_ms") / 60_000
    connect = [r.connect_seconds for r in results if r.connect_seconds is not None]
    waiting = [w for r in results for w in r.waiting_seconds]
    first_frame = [w for r in results for w in r.first_frame_seconds]
    rtt = [x for r in results for x in r.relay_rtt_ms]
    seat_changes = [d for r in results for d in r.disconnects if d.get("source") == "server"]
    counts = outcome_counts(results)
    summary: dict[str, Any] = {
        "url": url,
        "participants": len(results),
        "completed": counts["completed"],
        "failed": len(failures),
        "dropped": counts["dropped"],
        "failures": failures,
        "failure_reasons": _count(f["reason"] for f in failures),
        "outcomes": _count(str(r.outcome) for r in results if r.completed),
        "matches": len({m["match"] for r in results for m in r.matches}),
        "match_ends": _count(str(m.get("reason")) for r in results for m in r.matches),  # per participant-match
        "episodes": sum(1 for r in results for e in r.episodes if e["status"] == "done"),
        "desyncs": counts["desyncs"],
        "match_errors": counts["match_errors"],
        "seats_taken_over": counts["seats_taken_over"],
        "disconnects": counts["disconnects"],
        "partner_drops": len({(d.get("match"), d.get("seat")) for d in seat_changes}),
        "partner_drops_by": _count(str(d.get("by") or d.get("status")) for d in seat_changes),
        "errors": sum(len(r.errors) for r in results),
        "error_reasons": _count(f"{e.get('event')}: {e.get('reason')}" for r in results for e in r.errors),
        "frames": frames,
        "rollbacks": rollbacks,
        "rollbacks_per_100_frames": round(100 * rollbacks / frames, 3) if frames else None,
        "max_rollback_depth": max((r.stats.get("max_rollback_depth", 0) for r in results), default=0),
        "stalls": stalls,
        "stalls_per_minute": round(stalls / play_minutes, 3) if play_minutes > 0 else None,
        "relay_rtt_ms": distribution(rtt, 1),
        "connect_seconds": distribution(connect),
        "waiting_seconds": distribution(waiting),
        "first_frame_seconds": distribution(first_frame),
        "wall_seconds": round(wall, 3),
        "samples": {"connect_seconds": _cap(connect), "waiting_seconds": _cap(waiting),
                    "first_frame_seconds": _cap(first_frame), "relay_rtt_ms": _cap(rtt)},
    }
    summary.update(extra or {})
    summary["results"] = [r.to_json() for r in results]
    return summary


def _spread(s: Mapping[str, Any], unit: str) -> str:
    if s["mean"] is None:
        return "n/a"
    return f"p50 {s['p50']:g} {unit}, p95 {s['p95']:g} {unit}, p99 {s['p99']:g} {unit}, max {s['max']:g} {unit}"


def format_summary(summary: Mapping[str, Any]) -> str:
    """A few human lines for the terminal."""
    lines = [(
        f"participants: {summary['participants']} started, {summary['completed']} completed, "
        f"{summary['failed']} failed, {summary['dropped']} dropped on purpose   ({summary['wall_seconds']:.1f} s)"
    )]
    for reason, count in sorted(summary["failure_reasons"].items(), key=lambda item: -item[1]):
        lines.append(f"  failed x{count}: {reason}")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items())) or "none"
    ends = ", ".join(f"{k} {v}" for k, v in sorted(summary["match_ends"].items())) or "none"
    per100 = summary["rollbacks_per_100_frames"]
    per_min = summary["stalls_per_minute"]
    lines += [
        f"outcomes: {outcomes}",
        f"matches: {summary['matches']} played ({ends}), episodes finished {summary['episodes']}",
        f"desyncs: {summary['desyncs']}   Socket.IO disconnects: {summary['disconnects']}   "
        f"partners replaced: {summary['partner_drops']}   errors: {summary['errors']}   "
        f"matches ended in error: {summary.get('match_errors', 0)}   "
        f"own seat taken over: {summary.get('seats_taken_over', 0)}",
        f"rollbacks: {summary['rollbacks']} in {summary['frames']} frames "
        f"({'n/a' if per100 is None else f'{per100:g}'} per 100 frames, max depth {summary['max_rollback_depth']})"
        f"   stalls: {summary['stalls']} ({'n/a' if per_min is None else f'{per_min:g}'} per minute of play)",
        f"input relay round trip: {_spread(summary['relay_rtt_ms'], 'ms')}",
        f"time to connect: {_spread(summary['connect_seconds'], 's')}",
        f"time in waiting room: {_spread(summary['waiting_seconds'], 's')}",
        f"match start to first frame: {_spread(summary['first_frame_seconds'], 's')}",
    ]
    for reason, count in sorted(summary["error_reasons"].items(), key=lambda item: -item[1])[:10]:
        lines.append(f"  error x{count}: {reason}")
    server = summary.get("server")
    if server:
        def num(key: str, fmt: str) -> str:
            value = server.get(key)
            return "n/a" if value is None else format(value, fmt)
        rss = server.get("rss_bytes_max")
        lines.append(
            f"server: cpu {num('cpu_seconds', '.2f')} s (mean {num('cpu_percent_mean', '.0f')}%, "
            f"max {num('cpu_percent_max', '.0f')}%), rss max {'n/a' if rss is None else f'{rss / 1e6:.0f}'} MB, "
            f"{num('relayed_packets', '.0f')} packets relayed ({num('cpu_us_per_relayed_packet', '.0f')} us cpu each), "
            f"relay p99 {num('relay_seconds_p99', 'g')} s")
    elif "server_note" in summary:
        lines.append(f"server: {summary['server_note']}")
    generator = summary.get("generator")
    if generator:
        lines.append(format_generator(generator, summary.get("settings", {}).get("mode", "full")))
    if summary.get("verdict"):
        note = summary.get("verdict_note")
        lines.append(f"verdict: {summary['verdict']}" + (f" ({note})" if note else ""))
    if summary.get("report"):
        lines.append(f"report: {summary['report']}")
    return "\n".join(lines)


def format_generator(g: Mapping[str, Any], mode: str) -> str:
    """The load generator's own figures (app.loadtest.selfcheck.verdict) in one line."""
    def ms(d: Mapping[str, Any]) -> str:
        return "n/a" if d.get("p50") is None else f"p50 {d['p50']:g} ms, p99 {d['p99']:g} ms, max {d['max']:g} ms"
    per = ", ".join(f"{c:g}%" for c in g.get("cpu_percent_per_process", [])) or "n/a"
    us = g.get("cpu_us_per_packet")
    return (f"load generator ({mode} mode, {g['processes']} process(es)): cpu {g['cpu_seconds']:.2f} s "
            f"({per} of a core per process), {'n/a' if us is None else f'{us:g}'} us cpu per packet sent or "
            f"received ({g.get('channel_packets', 0)} of {g.get('packets_sent', 0)} sent on match channels); "
            f"tick lateness {ms(g['tick_late_ms'])}; loop lag {ms(g['loop_lag_ms'])}; "
            f"slow matches {g.get('slow_matches', 0)} of {g.get('matches', 0)}")
