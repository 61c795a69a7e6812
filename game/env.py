"""The Environment contract (duck-typed) and small helpers that read it.

A game is any class with these members; no base class is required:

    players: tuple[str, ...]           fixed, ordered player ids
    action_space: Space | {player: Space}
    default_action: action | {player: action}
    __init__(config: dict | None = None)
    reset(seed: int) -> {player: observation}
    step({player: action}) -> {"observations", "rewards", "terminated", "truncated", "info"}
    get_state() -> JSON-able (frame counters and all RNG state included)
    set_state(state) -> None
    render() -> list[dict]             optional draw primitives
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, TypedDict

from game.spaces import Space

STEP_KEYS = ("observations", "rewards", "terminated", "truncated", "info")


class StepResult(TypedDict):
    observations: dict[str, Any]
    rewards: dict[str, float]
    terminated: bool
    truncated: bool
    info: dict[str, Any]


class Env(Protocol):
    players: tuple[str, ...]
    action_space: Space | Mapping[str, Space]
    default_action: Any

    def reset(self, seed: int) -> dict[str, Any]: ...
    def step(self, actions: dict[str, Any]) -> StepResult: ...
    def get_state(self) -> Any: ...
    def set_state(self, state: Any) -> None: ...


def action_space_for(env: Any, player: str) -> Space:
    """The action space of one player (the env may give one space for all or one per player)."""
    space = env.action_space
    if isinstance(space, Mapping):
        return space[player]
    return space


def default_action_for(env: Any, player: str) -> Any:
    """The action of a player who pressed nothing or is absent.

    `default_action` is per player when it is a mapping keyed by exactly the players.
    """
    default = env.default_action
    if isinstance(default, Mapping) and set(default) == set(env.players):
        return default[player]
    return default
