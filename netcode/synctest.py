"""SyncTest: a single-process session that rolls back every frame to prove determinism.

Each tick it saves and advances as usual, then loads the frame `check_distance`
back and re-simulates to the present with the same inputs, saving with checksums.
A re-simulated checksum that differs from the first one is a DesyncDetected event
(peer "synctest"): the game does not save, restore or step deterministically.
"""
from __future__ import annotations

from typing import Any, Iterable

from netcode.config import SessionConfig
from netcode.errors import NetcodeError
from netcode.events import DesyncDetected, Event
from netcode.requests import CONFIRMED, AdvanceFrame, LoadState, Request, SaveState
from netcode.stats import SessionStats


class SyncTestSession:
    """Every player is local; every frame is checked."""

    def __init__(self, config: SessionConfig, check_distance: int = 2) -> None:
        if type(check_distance) is not int or not 1 <= check_distance <= 64:
            raise NetcodeError("invalid_config", f"check_distance must be an int in [1, 64], got {check_distance!r}")
        self.config = config
        self.check_distance = check_distance
        self.current_frame = 0
        self.stats = SessionStats()
        self._inputs: dict[int, dict[str, Any]] = {}
        self._pending: dict[str, Any] = {}
        self._checksums: dict[int, str] = {}
        self._events: list[Event] = []

    def add_local_input(self, player: str, action: Any) -> None:
        self.config.check_action(player, action, self.config.players)
        self._pending[player] = action

    def advance_frame(self) -> list[Request]:
        missing = [p for p in self.config.players if p not in self._pending]
        if missing:
            raise NetcodeError("missing_local_input", f"call add_local_input for {missing} before advance_frame()")
        frame = self.current_frame
        self._inputs[frame] = dict(self._pending)
        self._pending.clear()
        requests: list[Request] = [SaveState(frame, True), self._advance(frame)]
        first = frame + 1 - self.check_distance
        if first >= 0:
            self.stats.add_rollback(self.check_distance)
            requests.append(LoadState(first))
            for f in range(first, frame + 1):
                requests += [self._advance(f), SaveState(f + 1, True)]
        self.current_frame = frame + 1
        for old in [f for f in self._inputs if f < first]:
            del self._inputs[old]
        return requests

    def report_checksums(self, checksums: Iterable[tuple[int, str]]) -> None:
        for frame, checksum in checksums:
            expected = self._checksums.setdefault(frame, checksum)
            if expected != checksum:
                self.stats.desyncs += 1
                self._events.append(DesyncDetected(frame, expected, checksum, "synctest"))
        for old in [f for f in self._checksums if f < self.current_frame - self.check_distance - 1]:
            del self._checksums[old]

    def events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def poll(self) -> None:
        """Nothing to receive; present so every session drives the same way."""

    def _advance(self, frame: int) -> AdvanceFrame:
        inputs = self._inputs[frame]
        return AdvanceFrame(frame, dict(inputs), {p: CONFIRMED for p in inputs})
