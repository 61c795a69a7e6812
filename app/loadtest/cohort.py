"""Participants of a load test: full-netcode headless participants as threads (`ThreadCohort`), or
wire-level ones on one asyncio loop (`app.loadtest.wire.WireCohort`, `--mode wire`); in this process,
or split round-robin over worker processes started with multiprocessing's "spawn" context
(`ProcessCohort`), each running its share as one of those, so the generator is not the bottleneck.

Every cohort measures itself (app.loadtest.selfcheck): the lateness of its match ticks, the lag of
its threads or loop, its CPU; `selfcheck()` is that report (worker processes send theirs at the end).
Before any participant starts, `preload_games` imports every game the server's bundle names, once,
in the process that will play them: a game whose import (or first construction) is not
thread-safe must never be imported by two participant threads at once.

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

import requests

from app.loadtest.selfcheck import LagMonitor, SelfCheck
from app.loadtest.summary import outcome_counts, result_from_json
from app.participant.headless import BUNDLE_PATH, HeadlessParticipant, _Episode
from app.participant.result import ParticipantResult
from app.participant.link import ShapedLink
from app.participant.socket_client import split_url
from game.errors import CoplayError
from game.loader import LoadError, load_class

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
    mode: str = "full"              # "full": headless participants with the netcode; "wire": app.loadtest.wire


def preload_games(url: str, timeout: float = 30.0) -> list[str]:
    """Import every game the server's /bundle.json names, and build each once, in this process and
    before any participant starts; returns the game specs. A game that cannot be built without its
    scene's config is still imported (its first match builds it, as before)."""
    _, server, _ = split_url(url)
    try:
        response = requests.get(server + BUNDLE_PATH, timeout=timeout)
        response.raise_for_status()
        games = response.json().get("games")
    except (requests.RequestException, ValueError, AttributeError):
        return []   # no bundle here: each participant reports it when its match scene needs one
    specs = [spec for spec in games if isinstance(spec, str)] if isinstance(games, dict) else []
    for spec in specs:
        try:
            game_class = load_class(spec)
        except LoadError:
            continue   # the participant that gets this game reports it
        try:
            game_class({})
        except Exception:  # noqa: BLE001 - building with an empty config is only a warm-up; the match builds it for real
            pass
    return specs


class _MeasuredParticipant(HeadlessParticipant):
    """A headless participant whose match ticks report how late they ran (to the cohort's SelfCheck)."""

    def __init__(self, *args: Any, check: SelfCheck, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.check = check

    def _service_episode(self, ep: _Episode, now: float) -> None:
        if now >= ep.schedule.next_at:
            self.check.tick_late(now - ep.schedule.next_at)
        super()._service_episode(ep, now)


class ThreadCohort:
    """One thread per participant; each starts at t0 + its arrival offset."""

    def __init__(self, specs: list[ParticipantSpec], options: CohortOptions) -> None:
        self.specs = specs
        self.options = options
        self.people: dict[int, HeadlessParticipant] = {}
        self.results: dict[int, ParticipantResult] = {}
        self.check = SelfCheck()
        self._monitor = LagMonitor(self.check)
        self._stop_reason: str | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def prepare(self) -> None:
        """Import the server's games before any participant thread exists."""
        preload_games(self.options.url)

    def start(self, t0: float) -> None:
        self._threads = [threading.Thread(target=self._play, args=(spec, t0), name=f"participant-{spec.index}",
                                          daemon=True) for spec in self.specs]
        self.check.restart()
        self._monitor.start()
        for thread in self._threads:
            thread.start()

    def _play(self, spec: ParticipantSpec, t0: float) -> None:
        if self._stopping.wait(max(0.0, t0 + spec.arrival - time.monotonic())):
            self.results[spec.index] = ParticipantResult(completed=False, reason="not started before the stop "
                                                         f"({self._stop_reason})")
            return
        o = self.options
        link = ShapedLink(o.profile, spec.seed) if o.profile else None
        person = _MeasuredParticipant(
            o.url, params={"PROLIFIC_PID": spec.pid, "STUDY_ID": "coplay-loadtest", "SESSION_ID": o.session},
            policy=o.policy, seed=spec.seed, drop_at_frame=spec.drop_at_frame, link=link, check=self.check,
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
        self._monitor.stop()
        self.check.stop()
        return {spec.index: self.results.get(spec.index)
                or ParticipantResult(completed=False, reason="did not finish") for spec in self.specs}

    def selfcheck(self) -> list[dict[str, Any]]:
        """This process's SelfCheck report, with the packets its participants' sessions sent and received
        (and of those sent, how many went on a match channel)."""
        results = list(self.results.values())
        self.check.packets_sent = sum(r.stats.get("packets_sent", 0) for r in results)
        self.check.packets_received = sum(r.stats.get("packets_received", 0) for r in results)
        self.check.channel_packets = sum(r.packets_by_path.get("channel", 0) for r in results)
        return [self.check.to_json()]


def make_cohort(specs: list[ParticipantSpec], options: CohortOptions) -> Any:
    """The in-process cohort of `options.mode`."""
    if options.mode == "wire":
        from app.loadtest.wire import WireCohort   # aiohttp and asyncio only where the wire mode runs

        return WireCohort(specs, options)
    return ThreadCohort(specs, options)


# ----------------------------------------------------------------------------- worker processes


def worker_main(worker: int, specs: list[ParticipantSpec], options: CohortOptions,
                control: Any, report: Any) -> None:
    """A worker process: its share of participants as a ThreadCohort or WireCohort. Messages to the
    parent on `report`: ("ready", worker, None), ("progress", worker, {phases, tallies}), ("results",
    worker, {index: result JSON}) after ("selfcheck", worker, report); from the parent on `control`:
    ("go", t0) then possibly ("stop", reason)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle: it asks us to stop
    cohort = make_cohort(specs, options)
    cohort.prepare()
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
    report.put(("selfcheck", worker, cohort.selfcheck()))
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
        self._checks: dict[int, dict[str, Any]] = {}
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
            elif kind == "selfcheck":
                self._checks[worker] = value[0]
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

    def selfcheck(self) -> list[dict[str, Any]]:
        """The SelfCheck reports of the workers that sent one."""
        return [self._checks[k] for k in sorted(self._checks)]

    def _kill(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
