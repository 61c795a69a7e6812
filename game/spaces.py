"""Spaces describe valid actions (and optionally observations).

The server validates every input against them, the env checker samples from them and
the netcode predicts within them. `why_not(x)` returns a reason a value is outside the
space (or None), so error messages can say exactly what was wrong.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from game.hashing import is_finite_number
from game.rng import Rng


class Space:
    """Base class of all spaces."""

    def why_not(self, value: Any) -> str | None:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        return self.why_not(value) is None

    def __contains__(self, value: Any) -> bool:
        return self.contains(value)

    def sample(self, rng: Rng) -> Any:
        raise NotImplementedError

    def to_json(self) -> dict:
        """A JSON-able description; `space_from_json` turns it back into a space."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()})"


class Discrete(Space):
    """The ints start, start+1, ..., start+n-1."""

    def __init__(self, n: int, start: int = 0) -> None:
        if type(n) is not int or n < 1:
            raise ValueError(f"Discrete(n) needs an int n >= 1, got {n!r}")
        if type(start) is not int:
            raise ValueError(f"Discrete start must be an int, got {start!r}")
        self.n = n
        self.start = start

    def why_not(self, value: Any) -> str | None:
        if type(value) is not int:
            return f"expected an int, got {type(value).__name__} {value!r:.40}"
        if not self.start <= value < self.start + self.n:
            return f"{value} is outside [{self.start}, {self.start + self.n - 1}]"
        return None

    def sample(self, rng: Rng) -> int:
        return self.start + rng.randbelow(self.n)

    def to_json(self) -> dict:
        return {"type": "Discrete", "n": self.n, "start": self.start}


def _shape_ok(shape: Any) -> bool:
    return isinstance(shape, (list, tuple)) and all(type(d) is int and d >= 1 for d in shape)


class Box(Space):
    """Numbers in [low, high], as a scalar (shape ()) or nested lists of the given shape.

    `integer=True` restricts values to ints.
    """

    def __init__(self, low: float, high: float, shape: Sequence[int] = (), integer: bool = False) -> None:
        if not (is_finite_number(low) and is_finite_number(high)) or low > high:
            raise ValueError(f"Box needs finite low <= high, got low={low!r} high={high!r}")
        if not _shape_ok(shape):
            raise ValueError(f"Box shape must be a tuple of positive ints, got {shape!r}")
        self.low = low
        self.high = high
        self.shape = tuple(shape)
        self.integer = integer

    def _why_not_scalar(self, value: Any) -> str | None:
        if self.integer and type(value) is not int:
            return f"expected an int, got {type(value).__name__} {value!r:.40}"
        if not is_finite_number(value):
            return f"expected a finite number, got {type(value).__name__} {value!r:.40}"
        if not self.low <= value <= self.high:
            return f"{value} is outside [{self.low}, {self.high}]"
        return None

    def _why_not_at(self, value: Any, depth: int, path: str) -> str | None:
        if depth == len(self.shape):
            reason = self._why_not_scalar(value)
            return f"{path}: {reason}" if reason and path else reason
        if not isinstance(value, (list, tuple)) or len(value) != self.shape[depth]:
            return f"{path or 'value'}: expected a list of length {self.shape[depth]}, got {value!r:.40}"
        for index, item in enumerate(value):
            reason = self._why_not_at(item, depth + 1, f"{path}[{index}]")
            if reason:
                return reason
        return None

    def why_not(self, value: Any) -> str | None:
        return self._why_not_at(value, 0, "")

    def _sample_at(self, rng: Rng, depth: int) -> Any:
        if depth == len(self.shape):
            if self.integer:
                return rng.randint(int(self.low), int(self.high))
            return rng.uniform(self.low, self.high)
        return [self._sample_at(rng, depth + 1) for _ in range(self.shape[depth])]

    def sample(self, rng: Rng) -> Any:
        return self._sample_at(rng, 0)

    def to_json(self) -> dict:
        return {"type": "Box", "low": self.low, "high": self.high, "shape": list(self.shape), "integer": self.integer}


class Dict(Space):
    """A dict with exactly the given str keys, each value in its own space."""

    def __init__(self, spaces: Mapping[str, Space]) -> None:
        if not spaces or not all(type(k) is str and isinstance(s, Space) for k, s in spaces.items()):
            raise ValueError("Dict space needs a non-empty mapping of str keys to spaces")
        self.spaces = dict(sorted(spaces.items()))

    def why_not(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"expected a dict, got {type(value).__name__}"
        if set(value) != set(self.spaces):
            return f"expected keys {sorted(self.spaces)}, got {sorted(map(str, value))}"
        for key, space in self.spaces.items():
            reason = space.why_not(value[key])
            if reason:
                return f"[{key!r}]: {reason}"
        return None

    def sample(self, rng: Rng) -> dict:
        return {key: space.sample(rng) for key, space in self.spaces.items()}

    def to_json(self) -> dict:
        return {"type": "Dict", "spaces": {k: s.to_json() for k, s in self.spaces.items()}}


class Tuple(Space):
    """A fixed-length list whose items lie in the given spaces."""

    def __init__(self, spaces: Sequence[Space]) -> None:
        if not spaces or not all(isinstance(s, Space) for s in spaces):
            raise ValueError("Tuple space needs a non-empty sequence of spaces")
        self.spaces = tuple(spaces)

    def why_not(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)) or len(value) != len(self.spaces):
            return f"expected a list of length {len(self.spaces)}, got {value!r:.40}"
        for index, (item, space) in enumerate(zip(value, self.spaces)):
            reason = space.why_not(item)
            if reason:
                return f"[{index}]: {reason}"
        return None

    def sample(self, rng: Rng) -> list:
        return [space.sample(rng) for space in self.spaces]

    def to_json(self) -> dict:
        return {"type": "Tuple", "spaces": [s.to_json() for s in self.spaces]}


def space_from_json(data: Any) -> Space:
    """Rebuild a space from `Space.to_json()` output."""
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"not a space description: {data!r:.60}")
    kind = data["type"]
    if kind == "Discrete":
        return Discrete(data["n"], data.get("start", 0))
    if kind == "Box":
        return Box(data["low"], data["high"], data.get("shape", ()), data.get("integer", False))
    if kind == "Dict":
        return Dict({k: space_from_json(v) for k, v in data["spaces"].items()})
    if kind == "Tuple":
        return Tuple([space_from_json(v) for v in data["spaces"]])
    raise ValueError(f"unknown space type {kind!r}; expected Discrete, Box, Dict or Tuple")
