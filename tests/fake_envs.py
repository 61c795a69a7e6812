"""Fake envs for checker tests, built like Gymnasium's: `make_env` assembles a class from
the functions of a small correct toy game, with some members replaced or removed."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from game.checker import EnvCheckError, check_env
from game.rng import Rng
from game.spaces import Discrete

MISSING = object()  # pass as a member to make_env to leave that member out

# ---------------------------------------------------------------- the toy game


def toy_init(self: Any, config: dict | None = None) -> None:
    self.length = (config or {}).get("episode_length", 40)
    self.rng = Rng(0)
    self.frame = 0
    self.pos: dict[str, int] = {}


def toy_reset(self: Any, seed: int) -> dict:
    self.rng = Rng(seed)
    self.frame = 0
    self.pos = {p: 0 for p in self.players}
    return toy_observations(self)


def toy_observations(self: Any) -> dict:
    return {p: {"pos": self.pos[p], "frame": self.frame} for p in self.players}


def toy_step(self: Any, actions: dict) -> dict:
    self.frame += 1
    for p in self.players:
        self.pos[p] += actions[p] - 1 + self.rng.randbelow(2)
    return {
        "observations": self.observations(),
        "rewards": {p: float(self.pos[p]) for p in self.players},
        "terminated": self.frame >= self.length,
        "truncated": False,
        "info": {},
    }


def toy_get_state(self: Any) -> dict:
    return {"frame": self.frame, "pos": dict(self.pos), "rng": self.rng.getstate()}


def toy_set_state(self: Any, state: dict) -> None:
    self.frame = state["frame"]
    self.pos = dict(state["pos"])
    self.rng.setstate(state["rng"])


def toy_render(self: Any) -> list:
    return [{"type": "circle", "x": self.pos.get("a", 0), "y": 10, "r": 3, "color": "#fff"}]


TOY: dict[str, Any] = {
    "players": ("a", "b"),
    "action_space": Discrete(3),
    "default_action": 1,
    "__init__": toy_init,
    "reset": toy_reset,
    "observations": toy_observations,
    "step": toy_step,
    "get_state": toy_get_state,
    "set_state": toy_set_state,
    "render": toy_render,
}


def make_env(**members: Any) -> type:
    """The toy env class with some members replaced; a member given as MISSING is left out."""
    namespace = {name: value for name, value in {**TOY, **members}.items() if value is not MISSING}
    return type("FakeEnv", (), namespace)


def check_fails(env_class: type, code: str, **kwargs: Any) -> str:
    """Run the checker, expect EnvCheckError with `code`, return its message."""
    with pytest.raises(EnvCheckError) as caught:
        check_env(env_class, **kwargs)
    assert caught.value.code == code, caught.value.message
    assert str(caught.value) == caught.value.message
    return caught.value.message


def replaced(function: Callable[..., Any], **fixes: Any) -> Callable[..., Any]:
    """A step function that calls `function`, then overwrites parts of its result."""

    def step(self: Any, actions: dict) -> Any:
        result = function(self, actions)
        result.update(fixes)
        return result

    return step


JSON_HINT = (
    "Observations, info and states must be built from None, bool, int, float, str, lists and dicts "
    "with str keys; convert anything else (sets, numpy values, random.Random, custom objects) before "
    "returning it."
)
