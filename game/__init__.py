"""The Environment contract, spaces, a deterministic RNG, canonical state hashing,
the env checker and the reference games. Pure Python, stdlib only, no I/O: the same
source runs in CPython and in Pyodide."""
from __future__ import annotations

from game.env import Env, StepResult, action_space_for, default_action_for
from game.hashing import StateEncodingError, canonical_bytes, state_hash
from game.rng import Rng
from game.spaces import Box, Dict, Discrete, Space, Tuple, space_from_json

__all__ = [
    "Box", "Dict", "Discrete", "Env", "Rng", "Space", "StateEncodingError", "StepResult", "Tuple",
    "action_space_for", "canonical_bytes", "default_action_for", "space_from_json", "state_hash",
]
