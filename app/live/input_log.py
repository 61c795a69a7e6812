"""The server's canonical input log of one episode, built from relayed packets."""
from __future__ import annotations

from typing import Any, Sequence

from game.errors import CoplayError


class InconsistentInput(CoplayError, ValueError):
    """A seat resent an input that differs from the one it sent before."""

    code = "inconsistent_input"


class InputLog:
    """Every player's confirmed actions by frame; frames complete for all players in order."""

    def __init__(self, players: Sequence[str]) -> None:
        self.players = tuple(players)
        self.actions: dict[str, list[Any]] = {p: [] for p in self.players}
        self.complete = 0  # frames [0, complete) are known for every player
        self._columns = [self.actions[p] for p in self.players]

    def add(self, player: str, start: int, actions: Sequence[Any]) -> None:
        """Add a run of `player`'s inputs starting at frame `start` (resends are checked, gaps ignored)."""
        known = self.actions[player]
        overlap = len(known) - start   # how many of `actions` the log already has
        if overlap < 0:
            return
        if overlap and known[start:start + len(actions)] != actions[:overlap]:   # one C-level compare
            for frame in range(start, min(len(known), start + len(actions))):
                if known[frame] != actions[frame - start]:
                    raise InconsistentInput(f"input of {player!r} for frame {frame} was {known[frame]!r} "
                                            f"and is now {actions[frame - start]!r}")
        if overlap < len(actions):
            known.extend(actions[overlap:])

    def take_complete(self) -> list[tuple[int, list[Any]]]:
        """Frames that became complete since the last call, with one action per player."""
        columns = self._columns
        upto = min(map(len, columns))
        if upto <= self.complete:
            return []
        frames = [(f, [column[f] for column in columns]) for f in range(self.complete, upto)]
        self.complete = upto
        return frames

    def snapshot(self) -> dict[str, list[Any]]:
        return {p: list(actions) for p, actions in self.actions.items()}
