"""The checksum of every frame of a recorded episode; the same code runs in CPython and
Pyodide, so comparing the two lists tells whether both runtimes agree on a game."""
from __future__ import annotations

from typing import Any, Sequence

from game.hashing import state_hash


def trajectory_hashes(env: Any, seed: int, players: Sequence[str], inputs: Sequence[Sequence[Any]]) -> list[str]:
    """state_hash after reset(seed) and after each step of `inputs` (one action per player per frame)."""
    env.reset(seed)
    hashes = [state_hash(env.get_state())]
    for actions in inputs:
        env.step(dict(zip(players, actions)))
        hashes.append(state_hash(env.get_state()))
    return hashes


def first_divergence(ours: Sequence[str], theirs: Sequence[str]) -> int | None:
    """The first frame at which two checksum lists differ (comparing the frames both have), or None."""
    return next((frame for frame, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
