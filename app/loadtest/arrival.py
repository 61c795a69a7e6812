"""Arrival schedules: when each of N participants starts, in seconds after the run starts.

`burst` (everyone at once), `ramp:SECONDS` (evenly spread over that many seconds) and
`poisson:RATE` (a Poisson process of RATE arrivals per second: seeded exponential gaps,
the first participant at 0). The schedule is computed once, by the parent, so it is
global even when participants run in several worker processes.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = ("burst", "ramp", "poisson")


@dataclass(frozen=True)
class Arrival:
    kind: str           # burst, ramp or poisson
    value: float = 0.0  # ramp: seconds; poisson: arrivals per second

    def __str__(self) -> str:
        return self.kind if self.kind == "burst" else f"{self.kind}:{self.value:g}"


def parse_arrival(text: str) -> Arrival:
    """`burst`, `ramp:SECONDS` (>= 0) or `poisson:RATE` (> 0); ValueError saying what is wrong."""
    kind, sep, value = text.strip().partition(":")
    kind = kind.lower()
    if kind == "burst":
        if sep:
            raise ValueError(f"--arrival burst takes no value, got {text!r}")
        return Arrival("burst")
    if kind not in KINDS:
        raise ValueError(f"--arrival must be burst, ramp:SECONDS or poisson:RATE, got {text!r}")
    if not sep or not value:
        example = "ramp:30" if kind == "ramp" else "poisson:2"
        raise ValueError(f"--arrival {kind} needs a value, e.g. {example}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--arrival {kind}: {value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"--arrival {kind}: {value!r} is not a finite number")
    if kind == "ramp" and number < 0:
        raise ValueError(f"--arrival ramp: seconds must be >= 0, got {value}")
    if kind == "poisson" and number <= 0:
        raise ValueError(f"--arrival poisson: the rate (arrivals per second) must be > 0, got {value}")
    return Arrival(kind, number)


def arrival_offsets(arrival: Arrival, participants: int, seed: int = 0) -> list[float]:
    """Start offsets in seconds, non-decreasing, one per participant."""
    if arrival.kind == "burst" or participants <= 1:
        return [0.0] * participants
    if arrival.kind == "ramp":
        return [arrival.value * i / participants for i in range(participants)]
    rng = random.Random(seed)   # seeded and local: the same seed gives the same schedule
    offsets, t = [0.0], 0.0
    for _ in range(participants - 1):
        t += rng.expovariate(arrival.value)
        offsets.append(t)
    return offsets
