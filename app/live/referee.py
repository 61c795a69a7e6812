"""The server's own re-simulation of one episode, to settle what the seats report.

Seats report checksums and where the episode ended; a lying client or a runtime that
diverged reports wrong ones. The referee steps a CPython copy of the game with the
confirmed inputs (the one re-simulation, `game.lockstep`) a chunk at a time, in a
background task of the server, and knows the server's checksum of every check frame
and the frame where the game really ended.
"""
from __future__ import annotations

from typing import Any, Sequence

from game.lockstep import Lockstep

MAX_KEPT = 4096   # server checksums kept per episode (the recording holds them all)


class Referee:
    """One episode re-simulated from `add_frame`'d inputs; `run` steps it, `checksums` holds the results."""

    def __init__(self, env: Any, seed: int, players: Sequence[str], check_every: int) -> None:
        self.inputs: list[Sequence[Any]] = []
        self.sim = Lockstep(env, seed, players, self.inputs, length=0)
        self.check_every = check_every
        self.ended_at: int | None = None         # the first frame the game reached terminated or truncated
        self.checksums: dict[int, str] = {}      # frame -> the server's checksum of its state
        self._unreported = [(0, self.sim.checksum())] if check_every else []   # frame 0 is the reset state

    def add_frame(self, actions: Sequence[Any]) -> None:
        """The confirmed actions of the next frame (one per player, in the players' order)."""
        self.inputs.append(actions)
        if self.ended_at is None:
            self.sim.length = len(self.inputs)

    @property
    def frame(self) -> int:
        """The frame the re-simulation has reached."""
        return self.sim.frame

    @property
    def behind(self) -> int:
        """Frames with known inputs not re-simulated yet (none past the game's end)."""
        return self.sim.length - self.sim.frame

    def run(self, max_steps: int) -> list[tuple[int, str]]:
        """Step at most `max_steps` frames; returns the (frame, checksum) pairs computed on the way."""
        computed, self._unreported = self._unreported, []
        for _ in range(max_steps):
            if self.sim.done:
                break
            result = self.sim.step()
            frame = self.sim.frame
            if result["terminated"] or result["truncated"]:
                self.ended_at = self.sim.length = frame
            if frame == self.ended_at or (self.check_every and frame % self.check_every == 0):
                computed.append((frame, self.sim.checksum()))
        for frame, checksum in computed:
            self.checksums[frame] = checksum
        while len(self.checksums) > MAX_KEPT:
            del self.checksums[next(iter(self.checksums))]
        return computed
