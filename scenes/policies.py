"""AI policies: the interface, the built-ins "random" and "idle", and `Bot` (game/policies.py), which runs one.

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

from typing import Any

from game.adapters.onnx_policy import OnnxPolicy, as_onnx_policy
from game.policies import Bot, IdlePolicy, RandomPolicy  # noqa: F401 - Bot is re-exported here

from scenes.base import Resolver

BUILTIN_POLICIES = ("random", "idle")
_POLICY_HINT = "use 'random', 'idle', a class with act(observation), 'FILE.py:Class' or 'onnx:FILE.onnx'"


def why_not_policy(policy: Any) -> str | None:
    """Why `policy` is not a policy spec (None when it is)."""
    onnx = as_onnx_policy(policy)
    if onnx is not None:
        return onnx.why_not()
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
    onnx = as_onnx_policy(policy)
    if onnx is not None:
        return onnx.load(getattr(resolve, "base_dir", None))
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
