"""The wire-level load generator (`coplay loadtest --mode wire`): many participants on ONE asyncio loop.

`WireCohort` runs a share of the participants (app.loadtest.wire_participant's `WireParticipant`: the
real protocol, synthetic inputs, no rollback netcode) on a loop in a background thread and has the cohort
surface of app.loadtest.cohort; they share the process's `WireWorld` (app.loadtest.wire_world: one
`Ticker` for every seat's ticks, the loop-lag monitor, the HTTP connector, the match sims), and both the
ticker and the monitor feed the process's `SelfCheck` (app.loadtest.selfcheck).
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from app.loadtest.event_loop import new_event_loop
from app.loadtest.selfcheck import SelfCheck
from app.loadtest.wire_participant import WireParticipant
from app.loadtest.wire_world import WireWorld
from app.participant.result import ParticipantResult


async def play_all(people: list[tuple[int, float, WireParticipant]], t0: float, timeout: float,
                   world: WireWorld, results: dict[int, ParticipantResult]) -> None:
    """Start each participant at t0 + its arrival offset (time.monotonic clock) and run them all
    to the end on this loop."""
    background = await world.start()

    async def one(index: int, arrival: float, person: WireParticipant) -> None:
        await asyncio.sleep(max(0.0, t0 + arrival - time.monotonic()))
        if world.stopping is not None:
            results[index] = ParticipantResult(completed=False,
                                               reason=f"not started before the stop ({world.stopping})")
            return
        results[index] = await person.run(timeout)

    try:
        await asyncio.gather(*(one(i, a, p) for i, a, p in people))
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if world.connector is not None:
            await world.connector.close()


class WireCohort:
    """A share of participants as WireParticipants on one event loop (uvloop's when installed;
    app.loadtest.event_loop) in a background thread;
    the surface of app.loadtest.cohort's ThreadCohort (prepare, start, poll, phase_counts, tallies,
    alive, stop, finish) plus `selfcheck`."""

    def __init__(self, specs: list[Any], options: Any) -> None:
        self.specs = specs
        self.options = options
        self.check = SelfCheck(threads=False)   # fed by one event loop only
        self.world = WireWorld(self.check)
        self.people: dict[int, WireParticipant] = {}
        self.results: dict[int, ParticipantResult] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def prepare(self) -> None:
        """Import the server's games before the loop starts (app.loadtest.cohort.preload_games)."""
        from app.loadtest.cohort import preload_games

        preload_games(self.options.url)

    def start(self, t0: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(t0,), name="loadtest-wire", daemon=True)
        self._thread.start()

    def _run(self, t0: float) -> None:
        loop = new_event_loop()
        self._loop = loop
        o = self.options
        for spec in self.specs:
            self.people[spec.index] = WireParticipant(
                o.url, {"PROLIFIC_PID": spec.pid, "STUDY_ID": "coplay-loadtest", "SESSION_ID": o.session},
                spec.seed, self.world, o.policy)
        people = [(s.index, s.arrival, self.people[s.index]) for s in self.specs]
        self.check.restart()
        try:
            loop.run_until_complete(play_all(people, t0, o.timeout, self.world, self.results))
        finally:
            self.check.stop()
            loop.close()

    def poll(self) -> None:
        """Nothing arrives from elsewhere in-process."""

    def phase_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for spec in self.specs:
            person = self.people.get(spec.index)
            phase = person.phase if person is not None else "scheduled"
            if person is not None and phase == "new" and spec.index not in self.results:
                phase = "scheduled"
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    def tallies(self) -> dict[str, int]:
        from app.loadtest.summary import outcome_counts
        return outcome_counts(list(self.results.values()))

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, reason: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def stop_all() -> None:
            self.world.stopping = reason
            for person in self.people.values():
                person.stop(reason)
        try:
            loop.call_soon_threadsafe(stop_all)
        except RuntimeError:   # the loop closed meanwhile: everyone has finished
            pass

    def finish(self, grace: float) -> dict[int, ParticipantResult]:
        if self._thread is not None:
            self._thread.join(timeout=grace)
        return {spec.index: self.results.get(spec.index)
                or ParticipantResult(completed=False, reason="did not finish") for spec in self.specs}

    def selfcheck(self) -> list[dict[str, Any]]:
        return [self.check.to_json()]
