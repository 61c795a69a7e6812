"""AI policies: the interface, the built-ins "random" and "idle", and `Bot`, which runs one.

A policy is a class (pure Python, so it can also run in the browser's Pyodide):

    class MyPolicy:
        def __init__(self): ...                        # no arguments; one instance per player per match
        def setup(self, player, action_space, seed):   # optional; called once before play
            ...
        def act(self, observation):                    # once per frame -> an action in action_space,
            ...                                        #   or None for the player's default action

`observation` is the player's observation from the game's reset/step. Use `seed`
(e.g. with `game.rng.Rng`) for any randomness: no global `random`, no clock. A policy whose
constructor takes a `seed` argument gets it there too.
In a Match, `ai={"right": MyPolicy}`, or "random", "idle", "FILE.py:Class", "onnx:FILE.onnx",
an `OnnxPolicy(...)` (game/adapters/onnx_policy.py), or any of these in an `AISeat(...)` (scenes/ai_seat.py).
"""
from __future__ import annotations

import inspect
from typing import Any

from game.adapters.onnx_policy import ONNX_PREFIX, OnnxPolicy
from game.policies import IdlePolicy, RandomPolicy
from game.spaces import Space

from scenes.base import Resolver

BUILTIN_POLICIES = ("random", "idle")
_POLICY_HINT = "use 'random', 'idle', a class with act(observation), 'FILE.py:Class' or 'onnx:FILE.onnx'"


def why_not_policy(policy: Any) -> str | None:
    """Why `policy` is not a policy spec (None when it is)."""
    if isinstance(policy, OnnxPolicy):
        return policy.why_not()
    if isinstance(policy, str) and policy.startswith(ONNX_PREFIX):
        return OnnxPolicy(policy[len(ONNX_PREFIX):]).why_not()
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


def resolve_policy(policy: Any, resolve: Resolver | None = None) -> Any:
    """The policy factory for a spec: the class of "random", "idle", a class, or a "FILE.py:Class" string
    (needs `resolve`); or a loaded OnnxPolicy for "onnx:FILE.onnx" or an OnnxPolicy (a relative path is taken
    from `resolve.base_dir`, the experiment file's folder). Calling the factory makes one policy."""
    if isinstance(policy, str) and policy.startswith(ONNX_PREFIX):
        policy = OnnxPolicy(policy[len(ONNX_PREFIX):])
    if isinstance(policy, OnnxPolicy):
        return policy.load(getattr(resolve, "base_dir", None))
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


def policy_spec(policy: Any) -> str:
    """A policy as it is recorded: its spec string ("onnx:PATH" for an OnnxPolicy, module:qualname for a class)."""
    if isinstance(policy, str):
        return policy
    if isinstance(policy, OnnxPolicy):
        return policy.spec
    return f"{policy.__module__}:{policy.__qualname__}"


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
