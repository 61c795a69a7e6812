"""Simple AI policies for the reference games (see scenes/policies.py for the interface)."""
from __future__ import annotations

from typing import Any

from game.rng import Rng

STAY, UP, DOWN = 0, 1, 2


class PongTracker:
    """Moves its paddle's center toward the ball, with a dead zone and a reaction lag so it can be beaten."""

    def __init__(self, dead_zone: float = 12.0, lag_frames: int = 6) -> None:
        self.dead_zone = dead_zone
        self.lag_frames = lag_frames
        self.rng = Rng(0)
        self.seen: list[float] = []

    def setup(self, player: str, action_space: Any, seed: int) -> None:
        self.rng = Rng(seed)
        self.seen = []

    def act(self, observation: Any) -> int:
        if not isinstance(observation, dict):
            return STAY
        self.seen.append(observation["ball"][1])
        target = self.seen[-self.lag_frames] if len(self.seen) >= self.lag_frames else self.seen[0]
        del self.seen[: -self.lag_frames]
        gap = target - observation["paddle"]
        if abs(gap) <= self.dead_zone or self.rng.randbelow(10) == 0:
            return STAY
        return DOWN if gap > 0 else UP
