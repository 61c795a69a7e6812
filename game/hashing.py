"""Canonical encoding of game states and the checksum built on it.

The encoding is JSON with sorted keys and no spaces. Floats are written with
`repr`, which round-trips every finite float exactly and is the same algorithm in
CPython and Pyodide, so equal states give equal bytes in both runtimes. Tuples are
treated as lists. Anything that is not None, bool, int, float, str, list, tuple or a
dict with str keys is rejected with the path where it was found.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from game.errors import CoplayError

_SCALARS = (str, int, float, type(None))  # bool is an int subclass
_NON_FLOAT_SCALARS = (str, int, type(None))


class StateEncodingError(CoplayError, TypeError):
    """A state holds a value the canonical encoding does not accept."""

    code = "state_not_encodable"

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"state{path}: {problem}. Game states must be built from None, bool, int, float, "
            "str, lists/tuples and dicts with str keys; convert other objects (numpy values, "
            "sets, random.Random, custom classes) to those types in get_state()."
        )


def check_encodable(value: Any, path: str = "", finite: bool = False) -> None:
    """Raise `StateEncodingError` naming the first path holding a value that cannot be encoded.

    `finite=True` also refuses NaN and infinities, which browsers' JSON cannot carry
    (observations and info go to the browser; states stay in Python).
    """
    kind = type(value)
    if kind is float and finite and not math.isfinite(value):
        raise StateEncodingError(path, f"{value!r} is not a finite number (JSON in browsers has no NaN or Infinity)")
    if kind in _SCALARS or kind is bool:
        return
    plain = _NON_FLOAT_SCALARS if finite else _SCALARS
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            if type(item) not in plain:
                check_encodable(item, f"{path}[{index}]", finite)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise StateEncodingError(f"{path}", f"dict key {key!r} is a {type(key).__name__}, keys must be str")
            if type(item) not in plain:
                check_encodable(item, f"{path}[{key!r}]", finite)
        return
    raise StateEncodingError(path, f"{kind.__name__} value {value!r:.60} is not encodable")


def canonical_bytes(state: Any) -> bytes:
    """The canonical encoding of `state` (validated first)."""
    check_encodable(state)
    return json.dumps(state, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def state_hash(state: Any) -> str:
    """Checksum of a game state: the first 16 hex digits of the SHA-256 of its canonical bytes."""
    return hashlib.sha256(canonical_bytes(state)).hexdigest()[:16]


def is_finite_number(value: Any) -> bool:
    """True for ints and finite floats (bools excluded)."""
    if type(value) is int:
        return True
    return type(value) is float and math.isfinite(value)
