"""A tiny N-player game for netcode tests: each action moves a counter, and a running
mix of every action makes any wrong input visible in the state."""
from __future__ import annotations

from typing import Any

from game.spaces import Discrete


class Tally:
    action_space = Discrete(4)
    default_action = 0

    def __init__(self, config: dict | None = None) -> None:
        count = (config or {}).get("players", 2)
        self.players = tuple(f"p{i}" for i in range(count))
        self.frame = 0
        self.mix = 0
        self.pos = [0] * count

    def reset(self, seed: int) -> dict[str, Any]:
        self.frame, self.mix, self.pos = 0, seed % 1_000_003, [0] * len(self.players)
        return self._observations()

    def step(self, actions: dict[str, Any]) -> dict[str, Any]:
        self.frame += 1
        for index, player in enumerate(self.players):
            self.pos[index] += actions[player] - 1
            self.mix = (self.mix * 31 + actions[player] * (index + 7)) % 1_000_003
        return {"observations": self._observations(), "rewards": {p: 0.0 for p in self.players},
                "terminated": False, "truncated": False, "info": {}}

    def get_state(self) -> dict[str, Any]:
        return {"frame": self.frame, "mix": self.mix, "pos": list(self.pos)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.frame, self.mix, self.pos = state["frame"], state["mix"], list(state["pos"])

    def _observations(self) -> dict[str, Any]:
        return {p: {"pos": list(self.pos), "mix": self.mix} for p in self.players}


class CorruptedTally(Tally):
    """A Tally whose state silently goes wrong when it steps past `at_frame`."""

    def __init__(self, config: dict | None = None, at_frame: int = 200) -> None:
        super().__init__(config)
        self.at_frame = at_frame

    def step(self, actions: dict[str, Any]) -> dict[str, Any]:
        result = super().step(actions)
        if self.frame == self.at_frame + 1:
            self.mix += 1
        return result
