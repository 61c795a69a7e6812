"""One whole load test: schedule, participants (full or wire mode, in this process or in worker
processes), the `--duration` deadline, progress lines, the server metrics timeline, the generator's
own figures (app.loadtest.selfcheck) and the summary with its verdict."""
from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from app.loadtest.arrival import Arrival, arrival_offsets
from app.loadtest.cohort import CohortOptions, ParticipantSpec, ProcessCohort, make_cohort
from app.loadtest.selfcheck import BOTTLENECK, merge, overall_verdict, verdict
from app.loadtest.server_metrics import Metrics, ServerMetrics
from app.loadtest.summary import summarise

MODES = ("full", "wire")
STOP_REASON = "still running at --duration"
INTERRUPTED_REASON = "interrupted (Ctrl-C)"
STOP_GRACE_SECONDS = 15.0     # after the deadline, for participants to disconnect and workers to report
SAMPLE_SECONDS = 1.0          # timeline and server metrics
DROP_AT_FRAME = 30            # where --drop-fraction participants vanish (mid-match in any real match)
PHASE_ORDER = ("scheduled", "new", "entering", "connecting", "consent", "page", "survey", "waiting", "playing",
               "match_end", "done", "failed")


@dataclass
class LoadtestPlan:
    """What to run. `arrival` offsets are computed here, so the schedule is global."""

    url: str
    participants: int
    seed: int = 0
    timeout: float = 300.0
    arrival: Arrival = Arrival("burst")
    duration: float = 600.0
    profile: str | None = None
    processes: int = 1
    policy: str = "random"
    drop_fraction: float = 0.0
    drop_at_frame: int = DROP_AT_FRAME
    mode: str = "full"          # "full" (headless participants with the netcode) or "wire" (app.loadtest.wire)
    fps: int = 60               # the matches' frame rate: a tick later than one frame is the generator's lateness

    def specs(self, tag: str) -> list[ParticipantSpec]:
        offsets = arrival_offsets(self.arrival, self.participants, self.seed)
        drops = round(self.drop_fraction * self.participants)
        droppers = set(random.Random(self.seed ^ 0x5EED).sample(range(self.participants), drops))
        return [ParticipantSpec(index=i, pid=f"loadtest-{tag}-{i:05d}", seed=self.seed * 1_000_003 + i,
                                arrival=offsets[i], drop_at_frame=self.drop_at_frame if i in droppers else None)
                for i in range(self.participants)]


def progress_line(elapsed: float, participants: int, phases: dict[str, int], tallies: dict[str, int],
                  cpu_percent: float | None) -> str:
    known = [p for p in PHASE_ORDER if phases.get(p)] + sorted(p for p in phases if p not in PHASE_ORDER)
    shown = " ".join(f"{p} {phases[p]}" for p in known)
    cpu = "n/a" if cpu_percent is None else f"{cpu_percent:.0f}%"
    return (f"loadtest {elapsed:6.1f}s  {participants} participants: {shown} | completed {tallies.get('completed', 0)} "
            f"failed {tallies.get('failed', 0)} dropped {tallies.get('dropped', 0)} "
            f"disconnects {tallies.get('disconnects', 0)} desyncs {tallies.get('desyncs', 0)} | server cpu {cpu}")


def run_plan(
    plan: LoadtestPlan,
    progress: Callable[[str], None] | None = None,
    progress_every: float = 2.0,
    metrics_fetch: Callable[[], Metrics] | None = None,
) -> dict[str, Any]:
    """Run the plan to the end (or to `plan.duration`) and return the summary."""
    tag = secrets.token_hex(4)   # platform ids must be new on every run, or the server refuses them
    specs = plan.specs(tag)
    options = CohortOptions(url=plan.url, session=tag, policy=plan.policy, timeout=plan.timeout,
                            profile=plan.profile, mode=plan.mode)
    processes = max(1, min(plan.processes, plan.participants))
    cohort: Any = make_cohort(specs, options) if processes == 1 else ProcessCohort(specs, options, processes)
    metrics = ServerMetrics(plan.url, fetch=metrics_fetch)
    cohort.prepare()
    metrics.sample()
    started = time.monotonic()
    cohort.start(started)
    deadline = started + plan.duration
    timeline: list[dict[str, Any]] = []
    next_sample = next_line = started
    cpu: float | None = None
    stopped = False
    interrupted = False
    while cohort.alive():
        now = time.monotonic()
        if (now >= deadline or interrupted) and not stopped:
            stopped = True
            cohort.stop(INTERRUPTED_REASON if interrupted else STOP_REASON)
            deadline = now + STOP_GRACE_SECONDS
        elif stopped and now >= deadline:
            break   # the grace is over: whoever has not reported by now "did not finish"
        cohort.poll()
        if now >= next_sample:
            next_sample = now + SAMPLE_SECONDS
            server = metrics.sample()
            cpu = server["cpu_percent"]
            timeline.append({"t": round(now - started, 2), "phases": cohort.phase_counts(), **server})
        if progress and progress_every > 0 and now >= next_line:
            next_line = now + progress_every
            progress(progress_line(now - started, plan.participants, cohort.phase_counts(), cohort.tallies(), cpu))
        try:
            time.sleep(0.1)
        except KeyboardInterrupt:   # Ctrl-C: stop everyone cleanly and still summarise
            interrupted = True
    results_by_index = cohort.finish(grace=max(1.0, deadline - time.monotonic()) if stopped else 5.0)
    wall = time.monotonic() - started
    server = metrics.sample()
    timeline.append({"t": round(time.monotonic() - started, 2), "phases": cohort.phase_counts(), **server})
    if progress and progress_every > 0:
        progress(progress_line(wall, plan.participants, cohort.phase_counts(), cohort.tallies(), server["cpu_percent"]))
    results = [results_by_index[i] for i in range(plan.participants)]
    reports = cohort.selfcheck()
    generator = verdict(merge(reports), plan.fps) if reports else None
    extra: dict[str, Any] = {
        "settings": {"mode": plan.mode, "arrival": str(plan.arrival), "profile": plan.profile or "none",
                     "processes": processes, "duration": plan.duration, "timeout": plan.timeout,
                     "seed": plan.seed, "policy": plan.policy, "drop_fraction": plan.drop_fraction},
        "stopped_at_duration": stopped and not interrupted, "interrupted": interrupted,
        "server": metrics.summary(), "timeline": timeline, "generator": generator,
    }
    if extra["server"] is None:
        extra["server_note"] = metrics.note or "no server metrics were read"
    summary = summarise(plan.url, results, wall, extra)
    summary["verdict"] = overall_verdict((f["reason"] for f in summary["failures"]), generator)
    if generator is not None and generator["bottleneck"]:
        why = f"{BOTTLENECK}: " + "; ".join(generator["why"])
        summary["verdict_note"] = why if summary["verdict"] == "INCONCLUSIVE" else (
            "failures no load explains; the generator also fell behind (" + why + ")")
    return summary
