"""Waiting rooms: group participants of one match scene into matches, I/O-free.

`poll(now)` says what to do: start a match with these participants (AI filling the
empty human seats when the wait timed out and the scene allows it), or send someone
on because the wait timed out. `poll(now, admit=False)` while admission is closed
(app/live/admission.py) starts nothing: the room's timeout clock pauses, and only a
participant held longer than `max_hold_s` is sent on (reason "server_busy"). Open, at
most `max_starts` matches start (the slow start after reopening); the rest wait, in
arrival order. Either way `Held` counts the matches that could have started but wait.
`seatable` is how many matches could have all their seats filled now (a scene with remote AI seats
waits for free agent connections, app/live/agents.py): full groups beyond it wait, like partners,
until their timeout, when they start anyway (the seat's fallback plays) or are sent on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

TIMEOUT = "timeout"          # waited `timeout_s` (not counting time held) for partners
SERVER_BUSY = "server_busy"  # held longer than `max_hold_s` while the server admitted no new match


@dataclass(frozen=True)
class StartMatch:
    participants: tuple[str, ...]
    fill_with_ai: int  # empty human seats an AI takes
    waited_s: tuple[float, ...] = field(default=(), compare=False)  # how long each participant waited


@dataclass(frozen=True)
class TimedOut:
    participant: str
    reason: str = TIMEOUT


@dataclass(frozen=True)
class Held:
    """`matches` more matches would have started now, but admission is closed."""

    matches: int


@dataclass
class WaitingRoom:
    """Participants waiting for match scene `scene_id`, which needs `needed` humans."""

    scene_id: str
    needed: int
    timeout_s: float
    on_timeout: str  # "ai": fill empty seats with AI; "leave": send the participant on
    waiting: dict[str, float] = field(default_factory=dict)  # participant -> since (in join order)
    held_s: dict[str, float] = field(default_factory=dict)   # participant -> time held before `closed_at`
    closed_at: float | None = None   # admission has been closed since (as this room saw it)
    _held_matches: int = 0

    def join(self, participant: str, now: float) -> None:
        self.waiting.setdefault(participant, now)

    def leave(self, participant: str) -> None:
        self.waiting.pop(participant, None)
        self.held_s.pop(participant, None)

    def held(self, participant: str, now: float) -> float:
        """Seconds `participant` has spent here while admission was closed."""
        held = self.held_s.get(participant, 0.0)
        if self.closed_at is not None:
            held += now - max(self.waiting[participant], self.closed_at)
        return held

    def grouped(self) -> list[str]:
        """The participants in full groups, whose matches could start now."""
        return list(self.waiting)[: len(self.waiting) // self.needed * self.needed]

    def seconds_left(self, participant: str, now: float) -> float:
        return max(0.0, self.timeout_s - self._counted(participant, now))

    def _counted(self, participant: str, now: float) -> float:
        """Seconds of waiting that count towards the timeout: all but the time held."""
        return now - self.waiting[participant] - self.held(participant, now)

    def poll(self, now: float, admit: bool = True, max_hold_s: float = math.inf,
             max_starts: float = math.inf, seatable: float = math.inf) -> list[StartMatch | TimedOut | Held]:
        actions = self._open(now, max_starts, seatable) if admit else self._hold(now, max_hold_s)
        waiting_groups = len(self.waiting) // self.needed
        if waiting_groups > self._held_matches:
            actions.append(Held(waiting_groups - self._held_matches))
        self._held_matches = waiting_groups
        return actions

    def _open(self, now: float, max_starts: float, seatable: float) -> list[StartMatch | TimedOut | Held]:
        self._reopen(now)
        actions: list[StartMatch | TimedOut | Held] = []
        while len(self.waiting) >= self.needed and len(actions) < min(max_starts, seatable):
            group = tuple(list(self.waiting)[: self.needed])
            waited = tuple(now - self._pop(participant) for participant in group)
            actions.append(StartMatch(group, 0, waited))
        if len(self.waiting) >= self.needed and len(actions) >= max_starts:
            return actions   # no more starts allowed just now: the timeouts wait too
        expired = [p for p in self.waiting if self._counted(p, now) >= self.timeout_s]
        if expired and self.on_timeout == "ai":
            if len(actions) < max_starts:
                group = tuple(list(self.waiting)[: self.needed])
                waited = tuple(now - self._pop(participant) for participant in group)
                actions.append(StartMatch(group, self.needed - len(group), waited))
        else:
            for participant in expired:
                self._pop(participant)
                actions.append(TimedOut(participant))
        return actions

    def _hold(self, now: float, max_hold_s: float) -> list[StartMatch | TimedOut | Held]:
        if self.closed_at is None:
            self.closed_at = now
        actions: list[StartMatch | TimedOut | Held] = []
        for participant in [p for p in self.waiting if self.held(p, now) >= max_hold_s]:
            self._pop(participant)
            actions.append(TimedOut(participant, SERVER_BUSY))
        return actions

    def _reopen(self, now: float) -> None:
        """Admission is open again: bank each participant's time held; their timeout clocks run on."""
        if self.closed_at is None:
            return
        for participant in self.waiting:
            self.held_s[participant] = self.held(participant, now)
        self.closed_at = None

    def _pop(self, participant: str) -> float:
        self.held_s.pop(participant, None)
        return self.waiting.pop(participant)
