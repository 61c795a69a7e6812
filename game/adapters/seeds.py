"""`seeds:FILE.py:Class` / `seeds:module:Class`: the seed documents' single-agent contract.

The wrapped class needs:

    Environment(config: dict)              config["seed"] is set by coplay at every reset(seed)
    reset() -> state                       a list of numbers (or any JSON-able value)
    step(action) -> {"state", "reward", "done"[, "truncated"][, "info"]}

and declares its actions, on the class or the instance, as one of:

    action_space = game.spaces.Discrete(3)   (or Box, Dict, Tuple from game.spaces)
    action_space = 3                          an int n: Discrete(n)
    action_space = <gymnasium-like Discrete or Box>   (anything with .n, or .low/.high/.shape)
    n_actions = 3                             Discrete(3)

The one player is "player". The action of "no key pressed" is `config["default_action"]`,
else the class's `default_action` / `noop_action`, else the space's first value (Box: 0
clipped to the bounds). `done` with `truncated` true ends the episode as truncated, else
as terminated; once ended the env stays at its last state until the next reset. The env
gets a fresh instance at every reset, so a seed fully determines an episode. Snapshots are
the generic deep snapshot of the instance (game/snapshot.py), unless the class has its
own get_state/set_state. render() is used when it returns coplay draw primitives, else the
state is shown as text.
"""
from __future__ import annotations

from typing import Any

from game.adapters import AdapterError, convert_space, default_of, plain, render_or_text
from game.snapshot import capture, has_snapshots, restore_attributes
from game.spaces import Discrete, Space

PLAYER = "player"


def adapt(rest: str) -> type:
    """The Environment-contract class for the seeds-style class `rest` names (FILE.py:Class or module:Class)."""
    from game.loader import load_class   # noqa: PLC0415 (the loader imports the adapters lazily, too)
    return wrap(load_class(rest))


def wrap(inner: type) -> type:
    """The Environment-contract class for the seeds-style class `inner`."""
    return type(inner.__name__, (SeedsEnv,), {"inner_class": inner, "__module__": __name__})


def declared_space(source: Any, name: str) -> Space:
    """The action space `source` (the class or an instance) declares; see the module docstring."""
    space = getattr(source, "action_space", None)
    if isinstance(space, Space):
        return space
    if type(space) is int:
        return Discrete(space)
    if space is not None and type(space).__name__ in ("Discrete", "Box", "Dict", "Tuple", "MultiDiscrete"):
        return convert_space(space, f"{name}.action_space")
    if space is not None and isinstance(getattr(space, "n", None), int):
        return Discrete(space.n)
    n_actions = getattr(source, "n_actions", None)
    if type(n_actions) is int and n_actions >= 1:
        return Discrete(n_actions)
    raise AdapterError(
        f"{name} declares no action space: add `n_actions = 3` or `action_space = game.spaces.Discrete(3)` "
        "(or Box(low, high, shape)) to the class, so coplay knows which actions a player can take")


class SeedsEnv:
    """The Environment contract around a seeds-style class (`inner_class`, set by `adapt`)."""

    inner_class: type
    players = (PLAYER,)

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = dict(config or {})
        self.env = self.inner_class({"seed": 0, **self.config})
        name = self.inner_class.__name__
        self.action_space = declared_space(self.env, name)
        default = self.config.get("default_action", getattr(self.env, "default_action",
                                                          getattr(self.env, "noop_action", None)))
        self.default_action = default_of(self.action_space) if default is None else plain(default)
        self.state: Any = None
        self.ended = False

    def reset(self, seed: int) -> dict[str, Any]:
        self.env = self.inner_class({**self.config, "seed": seed})
        self.state = plain(self.env.reset())
        self.ended = False
        return {PLAYER: self.state}

    def step(self, actions: dict[str, Any]) -> dict[str, Any]:
        if self.ended:
            return self._result(0.0, terminated=True, truncated=False, info={})
        result = self.env.step(actions[PLAYER])
        if not isinstance(result, dict) or not {"state", "reward", "done"} <= set(result):
            raise AdapterError(f"{self.inner_class.__name__}.step() must return a dict with 'state', 'reward' "
                               f"and 'done' (and optionally 'truncated', 'info'); got {result!r:.80}")
        self.state = plain(result["state"])
        truncated = bool(result.get("truncated", False))
        self.ended = bool(result["done"]) or truncated
        return self._result(float(result["reward"]), terminated=self.ended and not truncated, truncated=truncated,
                            info=plain(result.get("info") or {}))

    def _result(self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> dict[str, Any]:
        return {"observations": {PLAYER: self.state}, "rewards": {PLAYER: reward},
                "terminated": terminated, "truncated": truncated, "info": info}

    def get_state(self) -> Any:
        env = self.env.get_state() if has_snapshots(self.env) else capture(self.env)
        return {"env": env, "state": self.state, "ended": self.ended}

    def set_state(self, state: Any) -> None:
        if has_snapshots(self.env):
            self.env.set_state(state["env"])
        else:
            restore_attributes(self.env, state["env"])
        self.state = plain(state["state"])   # plain() copies, so the snapshot is never aliased
        self.ended = state["ended"]

    def render(self) -> list[dict[str, Any]]:
        render = getattr(self.env, "render", None)
        return render_or_text(render() if callable(render) else None, self.inner_class.__name__,
                              {PLAYER: self.state})
