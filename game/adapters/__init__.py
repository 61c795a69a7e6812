"""Adapters: games written to other contracts, loaded by spec with zero glue.

    seeds:FILE.py:Class, seeds:module:Class   the seed documents' single-agent contract (seeds.py)
    gymnasium:ENV_ID                           a registered Gymnasium env (gymnasium_env.py)
    pettingzoo:MODULE                          a PettingZoo env module (pettingzoo_env.py)

`game.loader.ADAPTERS` maps each prefix to the `adapt(rest)` of its module, which returns a
class following the Environment contract (game/env.py). Each adapter imports its library
inside functions only, so `game/` stays stdlib-only for games that use none of them.

The helpers here are shared by the adapters: `plain` turns numpy values into JSON-able
ones, `convert_space` a Gymnasium space into a `game.spaces` one (`to_native` turns an
action back), and `render_or_text` is the render bridge.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from game.errors import CoplayError
from game.render import why_not_primitives
from game.spaces import Box, Dict, Discrete, Space, Tuple


class AdapterError(CoplayError):
    """A third-party env cannot be adapted; the message says what it lacks and what to do."""

    code = "adapter_failed"


def plain(value: Any) -> Any:
    """`value` with numpy arrays and scalars made lists and numbers, tuples lists, keys str."""
    kind = type(value)
    if kind in (type(None), bool, int, float, str):
        return value
    if hasattr(value, "tolist") and hasattr(value, "dtype"):   # numpy array or scalar
        return plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (int, float)):                       # int / float subclasses (IntEnum, ...)
        return float(value) if isinstance(value, float) else int(value)
    return repr(value)


def convert_space(space: Any, what: str) -> Space:
    """A `game.spaces` space for a Gymnasium space (Discrete, Box, MultiDiscrete, MultiBinary, Dict, Tuple)."""
    kind = type(space).__name__
    if isinstance(space, Space):
        return space
    if kind == "Discrete":
        return Discrete(int(space.n), int(space.start))
    if kind == "MultiBinary":
        return Box(0, 1, tuple(int(d) for d in space.shape), integer=True)
    if kind == "MultiDiscrete":
        return Tuple([Discrete(int(n), int(start)) for n, start in zip(space.nvec.tolist(), space.start.tolist())])
    if kind == "Box":
        low, high = float(space.low.min()), float(space.high.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise AdapterError(f"{what} is a Box with infinite bounds ({space}); coplay needs finite bounds")
        integer = space.dtype.kind in "iu"
        if integer:
            low, high = int(low), int(high)
        return Box(low, high, tuple(int(d) for d in space.shape), integer=integer)
    if kind == "Dict":
        return Dict({str(key): convert_space(item, f"{what}[{key!r}]") for key, item in space.spaces.items()})
    if kind == "Tuple":
        return Tuple([convert_space(item, f"{what}[{i}]") for i, item in enumerate(space.spaces)])
    raise AdapterError(f"{what} is a {kind}, which coplay cannot convert; use Discrete, Box, MultiDiscrete, "
                       "MultiBinary, Dict or Tuple")


def to_native(space: Any, action: Any) -> Any:
    """A JSON action turned back into what the Gymnasium space `space` holds (numpy arrays for Box)."""
    kind = type(space).__name__
    if kind in ("Box", "MultiBinary", "MultiDiscrete"):
        import numpy   # noqa: PLC0415 (lazy: only envs with numpy spaces get here)
        return numpy.asarray(action, dtype=space.dtype)
    if kind == "Dict":
        return {key: to_native(item, action[str(key)]) for key, item in space.spaces.items()}
    if kind == "Tuple":
        return tuple(to_native(item, value) for item, value in zip(space.spaces, action))
    return action


def default_of(space: Space) -> Any:
    """The no-op action of a space: Discrete's first value, Box's value nearest 0, per item for composites."""
    if isinstance(space, Discrete):
        return space.start
    if isinstance(space, Box):
        zero = min(max(0, space.low), space.high)
        value: Any = int(zero) if space.integer else float(zero)
        for size in reversed(space.shape):
            value = [value] * size
        return value
    if isinstance(space, Dict):
        return {key: default_of(item) for key, item in space.spaces.items()}
    if isinstance(space, Tuple):
        return [default_of(item) for item in space.spaces]
    raise AdapterError(f"no default action for {space!r}")


def render_or_text(primitives: Any, title: str, observations: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The render bridge: `primitives` when they are valid coplay draw primitives (game/render.py),
    else a text frame showing each player's observation."""
    if primitives is not None and why_not_primitives(primitives) is None:
        return primitives
    frame: list[dict[str, Any]] = [
        {"type": "viewport", "width": 800, "height": 600, "background": "#111"},
        {"type": "text", "x": 20, "y": 40, "text": title, "color": "#fff", "size": 22},
    ]
    for row, (player, observation) in enumerate(observations.items()):
        frame.append({"type": "text", "x": 20, "y": 90 + 30 * row, "text": f"{player}: {_short(observation)}",
                      "color": "#ddd", "size": 16})
    return frame


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        text = "[" + ", ".join(_short(item) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{key}: {_short(item)}" for key, item in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= 90 else text[:87] + "..."
