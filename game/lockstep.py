"""Lockstep re-simulation: a game reset with a seed and stepped with recorded inputs, frame by frame.

Replay, the replay viewer, export, simulate's convergence check and the cross-runtime
comparisons all re-simulate this way; they differ only in what they read at each frame:

    sim = Lockstep(env, seed, players, inputs)
    for frame in sim.frames():     # the env is in `frame`'s state here,
        sim.checksum()             # and steps with inputs[frame] once the loop body is done

Frame f is the state after f steps: 0 is the reset state, `length` the state after the
last step. Stdlib only: the same code runs in CPython and in the browser's Pyodide.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from game.hashing import state_hash
from game.snapshot import with_snapshots

# One frame's inputs: an action per player in `players` order, or {player: action}.
FrameInputs = Sequence[Any] | dict[str, Any]


class Lockstep:
    """One env re-simulating recorded inputs: reset with `seed` at once, then `step()` per frame.

    `length` (at most `len(inputs)`) is where the episode ends, e.g. at its recorded end."""

    def __init__(self, env: Any, seed: int, players: Sequence[str], inputs: Sequence[FrameInputs],
                 length: int | None = None) -> None:
        self.env = with_snapshots(env)   # an env without get_state gets the generic snapshot
        self.players = tuple(players)
        self.inputs = inputs
        self.length = len(inputs) if length is None else min(length, len(inputs))
        self.frame = 0
        self.result: Any = None                  # what the last step returned (None before the first)
        self._reset_observations = self.env.reset(seed)

    @property
    def done(self) -> bool:
        """Whether the env is at the last frame (no inputs left to step with)."""
        return self.frame >= self.length

    @property
    def observations(self) -> Any:
        """The observations at the current frame: reset's, then the last step's."""
        return self._reset_observations if self.result is None else self.result.get("observations")

    def actions(self) -> dict[str, Any]:
        """{player: action} of the current frame, a new dict each time."""
        inputs = self.inputs[self.frame]
        return dict(inputs) if isinstance(inputs, dict) else dict(zip(self.players, inputs))

    def step(self) -> Any:
        """Step with the current frame's inputs; returns the env's step result."""
        if self.frame >= self.length:
            raise IndexError(f"frame {self.frame} is the last one; there are no inputs to step with")
        self.result = self.env.step(self.actions())
        self.frame += 1
        return self.result

    def frames(self) -> Iterator[int]:
        """Each frame from the current one to `length`, with the env in that frame's state in between."""
        while True:
            yield self.frame
            if self.frame >= self.length:
                return
            self.step()

    def run_to(self, frame: int) -> None:
        """Step until the env is at `frame` (or at the last frame, if that comes first)."""
        while self.frame < frame and not self.done:
            self.step()

    def state(self) -> Any:
        return self.env.get_state()

    def checksum(self) -> str:
        """The state's canonical hash, as peers report it."""
        return state_hash(self.env.get_state())


def checksums(sim: Lockstep, at: Callable[[int], bool] | None = None) -> dict[int, str]:
    """Run `sim` to its last frame; {frame: checksum} of every frame `at` selects (all by default)."""
    return {frame: sim.checksum() for frame in sim.frames() if at is None or at(frame)}

