"""Policies any game can use: random (held like a key) and idle. The policy interface is
described in scenes/policies.py; these live in `game` so the simulator, the headless
participant and server bots share them."""
from __future__ import annotations

import inspect
from typing import Any

from game.rng import Rng
from game.spaces import Space


class RandomPolicy:
    """Random actions from the action space, each held for `min_hold` to `max_hold` frames (like a
    person holding a key), so it neither jitters nor stands still."""

    def __init__(self, min_hold: int = 4, max_hold: int = 20) -> None:
        self.min_hold, self.max_hold = min_hold, max_hold
        self.space: Space | None = None
        self.rng = Rng(0)
        self.action: Any = None
        self.frames_left = 0

    def setup(self, player: str, action_space: Space, seed: int) -> None:
        self.space = action_space
        self.rng = Rng(seed)
        self.frames_left = 0

    def act(self, observation: Any) -> Any:
        if self.space is None:
            raise RuntimeError("RandomPolicy.setup(player, action_space, seed) must be called before act()")
        if self.frames_left <= 0:
            self.action = self.space.sample(self.rng)
            self.frames_left = self.rng.randint(self.min_hold, self.max_hold)
        self.frames_left -= 1
        return self.action


class IdlePolicy:
    """Always the game's default action (a player who presses nothing).

    `act` returns None, which `Bot` turns into the player's default action.
    """

    def act(self, observation: Any) -> Any:
        return None


class Bot:
    """One policy playing one player: builds the policy (passing `seed=` when its constructor takes one),
    calls `setup`, and checks every action.

    `act` returns the default action when the policy returns None, and raises ValueError
    (naming the policy and player) when the action is not in the player's action space.
    """

    def __init__(self, factory: Any, *, player: str, action_space: Space, default_action: Any,
                 seed: int) -> None:
        self.player = player
        self.action_space = action_space
        self.default_action = default_action
        self.policy = factory(seed=seed) if _takes_seed(factory) else factory()
        setup = getattr(self.policy, "setup", None)
        if callable(setup):
            setup(player, action_space, seed)

    def act(self, observation: Any) -> Any:
        action = self.policy.act(observation)
        if action is None:
            return self.default_action
        reason = self.action_space.why_not(action)
        if reason:
            name = type(self.policy).__name__
            raise ValueError(f"policy {name} playing {self.player!r} chose an invalid action: {reason}")
        return action


def _takes_seed(factory: Any) -> bool:
    try:
        return "seed" in inspect.signature(factory).parameters
    except (TypeError, ValueError):   # a builtin without a signature
        return False
