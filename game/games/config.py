"""Config checks the reference games share: defaults merged with a match's config, numbers in range.

Every error is a ValueError that names the game and the offending key.
"""
from __future__ import annotations

from typing import Any

from game.hashing import is_finite_number


def merged_config(game: str, defaults: dict[str, Any], config: dict | None) -> dict[str, Any]:
    """`defaults` updated with `config` (None means no changes); refuses a non-dict and unknown keys."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"{game} config must be a dict, got {type(config).__name__}")
    unknown = sorted(str(k) for k in config if k not in defaults)
    if unknown:
        raise ValueError(f"unknown {game} config key {unknown[0]!r}; known keys: {', '.join(defaults)}")
    return {**defaults, **config}


def check_number(game: str, config: dict[str, Any], key: str, *, integer: bool = False,
                 low: float | None = None, high: float | None = None) -> None:
    """`config[key]` is a finite number (an int when `integer`; never a bool) within [low, high] (high only with low)."""
    value = config[key]
    if type(value) is not int and (integer or not is_finite_number(value)):
        kind = "an int" if integer else "a number"
        raise ValueError(f"{game} config {key!r} must be {kind}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{game} config {key!r} must be {bounds}, got {value!r}")
