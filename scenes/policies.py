"""AI policies: the interface, the built-ins "random" and "idle", and `Bot`, which runs one.

A policy is a class (pure Python, so it can also run in the browser's Pyodide):

    class MyPolicy:
        def __init__(self): ...                        # no arguments; one instance per player per match
        def setup(self, player, action_space, seed):   # optional; called once before play
            ...
        def act(self, observation):                    # once per frame -> an action in action_space,
            ...                                        #   or None for the player's default action

`observation` is the player's observation from the game's reset/step. Use `seed`
(e.g. with `game.rng.Rng`) for any randomness: no global `random`, no clock.
In a Match, `ai={"right": MyPolicy}`, or "random", "idle", or "FILE.py:Class".
"""
from __future__ import annotations

from typing import Any

from game.policies import IdlePolicy, RandomPolicy
from game.spaces import Space

from scenes.base import Resolver

BUILTIN_POLICIES = ("random", "idle")
_POLICY_HINT = "use 'random', 'idle', a class with act(observation), or 'FILE.py:Class'"


def why_not_policy(policy: Any) -> str | None:
    """Why `policy` is not a policy spec (None when it is)."""
    if isinstance(policy, str):
        target, sep, name = policy.rpartition(":")
        if policy in BUILTIN_POLICIES or (sep and target and name):
            return None
        return f"{policy!r:.60} is not a policy; {_POLICY_HINT}"
    if isinstance(policy, type):
        if not callable(getattr(policy, "act", None)):
            return f"policy class {policy.__name__} has no act(observation) method"
        return None
    if callable(getattr(policy, "act", None)):
        return f"pass the policy class {type(policy).__name__}, not an instance (each match builds a fresh one)"
    return f"{policy!r:.60} is not a policy; {_POLICY_HINT}"


def resolve_policy(policy: str | type, resolve: Resolver | None = None) -> type:
    """The policy class for a spec: "random", "idle", a class, or a "FILE.py:Class" string (needs `resolve`)."""
    if policy == "random":
        return RandomPolicy
    if policy == "idle":
        return IdlePolicy
    if isinstance(policy, type):
        return policy
    if resolve is None:
        raise ValueError(f"policy {policy!r} is a spec string; pass resolve= to load it")
    cls = resolve(policy)
    reason = why_not_policy(cls)
    if reason:
        raise ValueError(f"policy {policy!r}: {reason}")
    return cls


class Bot:
    """One policy playing one player: builds the policy, calls `setup`, and checks every action.

    `act` returns the default action when the policy returns None, and raises ValueError
    (naming the policy and player) when the action is not in the player's action space.
    """

    def __init__(self, policy_class: type, *, player: str, action_space: Space, default_action: Any,
                 seed: int) -> None:
        self.player = player
        self.action_space = action_space
        self.default_action = default_action
        self.policy = policy_class()
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
