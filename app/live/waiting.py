"""Waiting rooms: group participants of one match scene into matches, I/O-free.

`poll(now)` says what to do: start a match with these participants (AI filling the
empty human seats when the wait timed out and the scene allows it), or send someone
on because the wait timed out.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StartMatch:
    participants: tuple[str, ...]
    fill_with_ai: int  # empty human seats an AI takes
    waited_s: tuple[float, ...] = field(default=(), compare=False)  # how long each participant waited


@dataclass(frozen=True)
class TimedOut:
    participant: str


@dataclass
class WaitingRoom:
    """Participants waiting for match scene `scene_id`, which needs `needed` humans."""

    scene_id: str
    needed: int
    timeout_s: float
    on_timeout: str  # "ai": fill empty seats with AI; "leave": send the participant on
    waiting: dict[str, float] = field(default_factory=dict)  # participant -> since (in join order)

    def join(self, participant: str, now: float) -> None:
        self.waiting.setdefault(participant, now)

    def leave(self, participant: str) -> None:
        self.waiting.pop(participant, None)

    def seconds_left(self, participant: str, now: float) -> float:
        return max(0.0, self.timeout_s - (now - self.waiting[participant]))

    def poll(self, now: float) -> list[StartMatch | TimedOut]:
        actions: list[StartMatch | TimedOut] = []
        while len(self.waiting) >= self.needed:
            group = tuple(list(self.waiting)[: self.needed])
            waited = tuple(now - self.waiting.pop(participant) for participant in group)
            actions.append(StartMatch(group, 0, waited))
        expired = [p for p, since in self.waiting.items() if now - since >= self.timeout_s]
        if expired and self.on_timeout == "ai":
            group = tuple(self.waiting)
            waited = tuple(now - since for since in self.waiting.values())
            self.waiting.clear()
            actions.append(StartMatch(group, self.needed - len(group), waited))
        else:
            for participant in expired:
                del self.waiting[participant]
                actions.append(TimedOut(participant))
        return actions
