"""A tiny deterministic PRNG whose whole state is one integer.

`random.Random` carries a 625-int state, which makes every snapshot of a game that
uses it slow to copy and hash. `Rng` (SplitMix64) keeps one 64-bit int, produces the
same numbers in CPython and Pyodide, and uses only integer arithmetic.
"""
from __future__ import annotations

from typing import MutableSequence, Sequence, TypeVar

T = TypeVar("T")

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class Rng:
    """SplitMix64. `getstate()` is a plain int, so it drops straight into `get_state()`."""

    __slots__ = ("_state",)

    def __init__(self, seed: int = 0) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"Rng seed must be an int, got {type(seed).__name__}")
        self._state = seed & _MASK

    def getstate(self) -> int:
        return self._state

    def setstate(self, state: int) -> None:
        if not isinstance(state, int) or isinstance(state, bool) or not 0 <= state <= _MASK:
            raise ValueError(f"Rng state must be an int in [0, 2**64), got {state!r}")
        self._state = state

    def next_u64(self) -> int:
        self._state = z = (self._state + _GOLDEN) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def randbelow(self, n: int) -> int:
        """Uniform int in [0, n), unbiased (rejection sampling)."""
        if n <= 0:
            raise ValueError(f"randbelow needs n > 0, got {n}")
        if n > 1 << 64:  # wider than one draw: take enough 64-bit words, reject values >= n
            words = (n.bit_length() + 63) // 64
            extra = words * 64 - n.bit_length()
            while True:
                x = 0
                for _ in range(words):
                    x = (x << 64) | self.next_u64()
                x >>= extra
                if x < n:
                    return x
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            x = self.next_u64()
            if x < limit:
                return x % n

    def randint(self, low: int, high: int) -> int:
        """Uniform int in [low, high], both ends included."""
        if high < low:
            raise ValueError(f"randint needs low <= high, got {low} > {high}")
        return low + self.randbelow(high - low + 1)

    def random(self) -> float:
        """Uniform float in [0, 1), exactly representable (53 random bits)."""
        return (self.next_u64() >> 11) * (1.0 / 9007199254740992.0)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def choice(self, seq: Sequence[T]) -> T:
        if not seq:
            raise IndexError("cannot choose from an empty sequence")
        return seq[self.randbelow(len(seq))]

    def shuffle(self, items: MutableSequence[T]) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.randbelow(i + 1)
            items[i], items[j] = items[j], items[i]
