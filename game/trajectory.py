"""The checksum of every frame of a trajectory, computed the same way in CPython and in Pyodide.

`coplay replay --runtime pyodide` and `coplay check-env --runtime pyodide` call these functions
in both runtimes (app/pyodide/node.py's `PyodideNode.call`) and compare the lists with
`first_divergence`: where they differ, browsers and CPython (bots, replays) would desync.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from game.checker import trajectory_checksums
from game.loader import class_from_source, load_class
from game.lockstep import Lockstep, checksums


def trajectory_hashes(env: Any, seed: int, players: Sequence[str], inputs: Sequence[Sequence[Any]]) -> list[str]:
    """state_hash after reset(seed) and after each step of `inputs` (one action per player per frame)."""
    return list(checksums(Lockstep(env, seed, players, inputs)).values())


def recorded_hashes(game: str, source: str | None, config: Any, players: Sequence[str],
                    episodes: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """{episode: trajectory_hashes} of a recording's episodes ({episode: {"seed", "inputs"}}), re-simulated
    with the game source stored in the recording (`game` is the recorded spec, naming the class), or
    with `source` None, with the game `game` imports (a recorded source tree loaded like a bundle)."""
    cls = load_class(game) if source is None else class_from_source(source, game)
    return {episode: trajectory_hashes(cls(config), data["seed"], players, data["inputs"])
            for episode, data in episodes.items()}


def checker_hashes(spec: str, config: dict[str, Any] | None, frames: int, seed: int) -> list[str]:
    """The checksums of the env checker's trajectory (`game.checker.trajectory_checksums`) of the game `spec`."""
    return trajectory_checksums(load_class(spec), config, frames, seed)


def first_divergence(ours: Sequence[str], theirs: Sequence[str]) -> int | None:
    """The first frame at which two checksum lists differ (comparing the frames both have), or None."""
    return next((frame for frame, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
