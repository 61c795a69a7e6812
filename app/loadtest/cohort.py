"""Participants of a load test as threads: in this process (`ThreadCohort`), or split round-robin
over worker processes started with multiprocessing's "spawn" context (`ProcessCohort`), each
running its share as a `ThreadCohort`, so the generator is not the bottleneck.

Both have the same surface: `prepare()`, `start(t0)` (t0 is a `time.monotonic()` value;
on Linux that clock is system-wide, so workers share the parent's schedule), `poll()`,
`phase_counts()`, `tallies()`, `alive()`, `stop(reason)`, `finish(grace)` -> results by
participant index. Workers stream phase counts to the parent over a Queue and send their
results back as JSON at the end.
"""
from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from app.participant.headless import HeadlessParticipant, ParticipantResult
from app.participant.link import ShapedLink
from app.loadtest.summary import outcome_counts, result_from_json
from game.errors import CoplayError

PROGRESS_SECONDS = 0.5       # how often a worker reports its phase counts
READY_TIMEOUT_SECONDS = 120  # a worker process must have imported everything by then


class WorkerFailed(CoplayError, RuntimeError):
    """A load-test worker process died or did not start in time."""

    code = "loadtest_worker_failed"
    exit_code = 1


@dataclass(frozen=True)
class ParticipantSpec:
    index: int
    pid: str                        # PROLIFIC_PID, new on every run
    seed: int
    arrival: float                  # seconds after the start
    drop_at_frame: int | None = None


@dataclass(frozen=True)
class CohortOptions:
    url: str
    session: str                    # SESSION_ID of every participant of this run
    policy: str = "random"
    timeout: float = 300.0          # per participant
    profile: str | None = None      # client-side network shaping


class ThreadCohort:
    """One thread per participant; each starts at t0 + its arrival offset."""

    def __init__(self, specs: list[ParticipantSpec], options: CohortOptions) -> None:
        self.specs = specs
        self.options = options
        self.people: dict[int, HeadlessParticipant] = {}
        self.results: dict[int, ParticipantResult] = {}
        self._stop_reason: str | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def prepare(self) -> None:
        """Nothing to get ready in-process."""

    def start(self, t0: float) -> None:
        self._threads = [threading.Thread(target=self._play, args=(spec, t0), name=f"participant-{spec.index}",
                                          daemon=True) for spec in self.specs]
        for thread in self._threads:
            thread.start()

    def _play(self, spec: ParticipantSpec, t0: float) -> None:
        if self._stopping.wait(max(0.0, t0 + spec.arrival - time.monotonic())):
            self.results[spec.index] = ParticipantResult(completed=False, reason="not started before the stop "
                                                         f"({self._stop_reason})")
            return
        o = self.options
        link = ShapedLink(o.profile, spec.seed) if o.profile else None
        person = HeadlessParticipant(
            o.url, params={"PROLIFIC_PID": spec.pid, "STUDY_ID": "coplay-loadtest", "SESSION_ID": o.session},
            policy=o.policy, seed=spec.seed, drop_at_frame=spec.drop_at_frame, link=link,
        )
        with self._lock:
            self.people[spec.index] = person
            stop = self._stop_reason
        if stop is not None:
            person.stop(stop)
        self.results[spec.index] = person.run(o.timeout)

    def poll(self) -> None:
        """Nothing arrives from elsewhere in-process."""

    def phase_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for spec in self.specs:
            person = self.people.get(spec.index)
            phase = person.phase if person is not None else "failed" if spec.index in self.results else "scheduled"
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    def tallies(self) -> dict[str, int]:
        return outcome_counts(list(self.results.values()))

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stop(self, reason: str) -> None:
        """End every participant still running (cleanly: they disconnect) and start no more."""
        with self._lock:
            self._stop_reason = reason
            people = list(self.people.values())
        self._stopping.set()
        for person in people:
            person.stop(reason)

    def finish(self, grace: float) -> dict[int, ParticipantResult]:
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return {spec.index: self.results.get(spec.index)
                or ParticipantResult(completed=False, reason="did not finish") for spec in self.specs}


# ----------------------------------------------------------------------------- worker processes


def worker_main(worker: int, specs: list[ParticipantSpec], options: CohortOptions,
                control: Any, report: Any) -> None:
    """A worker process: its share of participants as a ThreadCohort. Messages to the parent on
    `report`: ("ready", worker, None), ("progress", worker, {phases, tallies}), ("results", worker,
    {index: result JSON}); from the parent on `control`: ("go", t0) then possibly ("stop", reason)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle: it asks us to stop
    cohort = ThreadCohort(specs, options)
    report.put(("ready", worker, None))
    kind, value = control.get()
    if kind == "go":
        cohort.start(float(value))
    else:
        cohort.stop(str(value))
    stop_reason: str | None = None if kind == "go" else str(value)
    while cohort.alive():
        try:
            kind, value = control.get(timeout=PROGRESS_SECONDS)
            if kind == "stop":
                stop_reason = str(value)
                cohort.stop(stop_reason)
        except queue.Empty:
            pass
        report.put(("progress", worker, {"phases": cohort.phase_counts(), "tallies": cohort.tallies()}))
    results = cohort.finish(grace=1.0 if stop_reason is None else 5.0)
    report.put(("progress", worker, {"phases": cohort.phase_counts(), "tallies": cohort.tallies()}))
    report.put(("results", worker, {index: r.to_json() for index, r in results.items()}))


class ProcessCohort:
    """Participants split round-robin over `processes` spawned workers."""

    def __init__(self, specs: list[ParticipantSpec], options: CohortOptions, processes: int) -> None:
        self.specs = specs
        self.options = options
        self.shares = [specs[k::processes] for k in range(processes)]
        self._ctx = multiprocessing.get_context("spawn")
        self._report = self._ctx.Queue()
        self._controls = [self._ctx.Queue() for _ in self.shares]
        self._processes: list[Any] = []
        self._progress: dict[int, dict[str, Any]] = {}
        self._results: dict[int, dict[int, ParticipantResult]] = {}
        self._ready: set[int] = set()

    def prepare(self) -> None:
        """Start the workers and wait until each has imported everything and built its cohort."""
        for k, share in enumerate(self.shares):
            process = self._ctx.Process(target=worker_main, args=(k, share, self.options, self._controls[k],
                                                                  self._report), name=f"loadtest-worker-{k}",
                                        daemon=True)
            process.start()
            self._processes.append(process)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while len(self._ready) < len(self.shares):
            self._drain(timeout=0.2)
            dead = [k for k, p in enumerate(self._processes) if k not in self._ready and not p.is_alive()]
            if dead or time.monotonic() > deadline:
                self._kill()
                why = f"exited with {self._processes[dead[0]].exitcode}" if dead else "did not start in time"
                raise WorkerFailed(f"load test worker process {dead[0] if dead else '?'} {why}")

    def start(self, t0: float) -> None:
        for control in self._controls:
            control.put(("go", t0))

    def _drain(self, timeout: float = 0.0) -> None:
        while True:
            try:
                kind, worker, value = self._report.get(timeout=timeout)
            except queue.Empty:
                return
            timeout = 0.0
            if kind == "ready":
                self._ready.add(worker)
            elif kind == "progress":
                self._progress[worker] = value
            elif kind == "results":
                self._results[worker] = {int(i): result_from_json(r) for i, r in value.items()}

    def poll(self) -> None:
        self._drain()

    def phase_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for k, share in enumerate(self.shares):
            phases = self._progress.get(k, {}).get("phases") or {"scheduled": len(share)}
            for phase, n in phases.items():
                counts[phase] = counts.get(phase, 0) + n
        return counts

    def tallies(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for progress in self._progress.values():
            for key, n in progress.get("tallies", {}).items():
                out[key] = out.get(key, 0) + n
        return out

    def alive(self) -> bool:
        return any(k not in self._results and p.is_alive() for k, p in enumerate(self._processes))

    def stop(self, reason: str) -> None:
        for control in self._controls:
            control.put(("stop", reason))

    def finish(self, grace: float) -> dict[int, ParticipantResult]:
        deadline = time.monotonic() + grace
        while len(self._results) < len(self.shares) and time.monotonic() < deadline:
            self._drain(timeout=0.2)
            if not self.alive():
                self._drain(timeout=0.5)
                break
        for process in self._processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
        self._kill()
        out: dict[int, ParticipantResult] = {}
        for k, share in enumerate(self.shares):
            got = self._results.get(k, {})
            code = self._processes[k].exitcode
            for spec in share:
                out[spec.index] = got.get(spec.index) or ParticipantResult(
                    completed=False, reason=f"worker process {k} ended without results (exit code {code})")
        for q in (self._report, *self._controls):
            q.close()
            q.cancel_join_thread()
        return out

    def _kill(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
