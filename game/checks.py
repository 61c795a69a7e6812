"""The env checker's shape checks: the members of an env and the shapes of its results.

Each function raises `EnvCheckError` with a stable `code` and a message that says what
is wrong and how to fix it. `game.checker.check_env` runs them; the behavioural checks
(determinism, snapshots, rollback) live there.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from game.env import STEP_KEYS, action_space_for, default_action_for
from game.errors import CoplayError
from game.hashing import StateEncodingError, check_encodable, is_finite_number
from game.spaces import Space

_MISSING = object()

JSON_HINT = (
    "Observations, info and states must be built from None, bool, int, float, str, lists "
    "and dicts with str keys; convert anything else (sets, numpy values, random.Random, "
    "custom objects) before returning it."
)


class EnvCheckError(CoplayError):
    """The env breaks the contract. `code` is a short stable id, `message` says what and how to fix."""

    code = "env_check_failed"
    exit_code = 1

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


def _mismatch(actual: Iterable[Any], expected: Iterable[Any]) -> str:
    """E.g. "missing ['b'], unexpected ['c']" for two key collections."""
    actual, expected = list(actual), list(expected)
    missing = [key for key in expected if key not in actual]
    unexpected = sorted((key for key in actual if key not in expected), key=repr)
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if unexpected:
        parts.append(f"unexpected {unexpected}")
    return ", ".join(parts)


# ---------------------------------------------------------------- members


def check_methods(env_class: type) -> None:
    """reset and step are required; get_state and set_state come together or not at all."""
    name = env_class.__name__
    for method in ("reset", "step"):
        if not callable(getattr(env_class, method, None)):
            raise EnvCheckError(
                "missing_member",
                f"{name} has no {method}() method. Every env needs reset(seed) -> {{player: observation}} "
                f"and step(actions) -> {{'observations', 'rewards', 'terminated', 'truncated', 'info'}} "
                f"(see game/env.py).",
            )
    has_get = callable(getattr(env_class, "get_state", None))
    has_set = callable(getattr(env_class, "set_state", None))
    if has_get != has_set:
        present, absent = ("get_state", "set_state") if has_get else ("set_state", "get_state")
        raise EnvCheckError(
            "missing_member",
            f"{name} has {present}() but no {absent}(). Implement both, or neither to use the "
            f"(slower) generic snapshot of game/snapshot.py.",
        )


def check_players(env: Any) -> tuple[str, ...]:
    """players: a non-empty tuple (or list) of unique str ids."""
    name = type(env).__name__
    players = getattr(env, "players", _MISSING)
    if players is _MISSING:
        raise EnvCheckError(
            "missing_member",
            f"{name} has no `players`. Add the fixed, ordered player ids, e.g. players = ('left', 'right').",
        )
    if not isinstance(players, (tuple, list)) or not players or not all(type(p) is str for p in players):
        raise EnvCheckError(
            "bad_players",
            f"{name}.players must be a non-empty tuple of str player ids, e.g. ('left', 'right'); got {players!r:.80}.",
        )
    duplicates = sorted({p for p in players if players.count(p) > 1})
    if duplicates:
        raise EnvCheckError(
            "bad_players", f"{name}.players lists {duplicates} more than once; player ids must be unique."
        )
    return tuple(players)


def _check_space_member(env: Any, players: tuple[str, ...], attribute: str, code: str, hint: str) -> None:
    """A game.spaces.Space, or {player: Space} with exactly one entry per player."""
    name = type(env).__name__
    space = getattr(env, attribute)
    if isinstance(space, Space):
        return
    if isinstance(space, Mapping):
        if set(space) != set(players):
            raise EnvCheckError(
                code,
                f"{name}.{attribute} is a dict, so it needs exactly one space per player {list(players)} "
                f"({_mismatch(space, players)}).",
            )
        for player, item in space.items():
            if not isinstance(item, Space):
                raise EnvCheckError(
                    code,
                    f"{name}.{attribute}[{player!r}] is a {type(item).__name__}, not a game.spaces.Space; "
                    f"use Discrete, Box, Dict or Tuple from game.spaces.",
                )
        return
    raise EnvCheckError(
        code,
        f"{name}.{attribute} is a {type(space).__name__}, not a game.spaces.Space or a {{player: Space}} dict; {hint}",
    )


def check_action_space(env: Any, players: tuple[str, ...]) -> None:
    """action_space: a game.spaces.Space, or {player: Space} for exactly the players."""
    if not hasattr(env, "action_space"):
        raise EnvCheckError(
            "missing_member",
            f"{type(env).__name__} has no `action_space`. Add one from game.spaces, e.g. action_space = Discrete(5), "
            f"or {{player: space}} for one per player.",
        )
    _check_space_member(env, players, "action_space", "bad_action_space", "use e.g. Discrete(5) from game.spaces.")


def check_default_action(env: Any, players: tuple[str, ...]) -> None:
    """default_action (one for all, or {player: action}) lies in each player's action space."""
    name = type(env).__name__
    if not hasattr(env, "default_action"):
        raise EnvCheckError(
            "missing_member",
            f"{name} has no `default_action`. Add the input of a player who pressed nothing, "
            f"e.g. default_action = 0 (or {{player: action}}).",
        )
    for player in players:
        reason = action_space_for(env, player).why_not(default_action_for(env, player))
        if reason:
            raise EnvCheckError(
                "bad_default_action",
                f"{name}.default_action for player {player!r} is not in its action space: {reason}. Set "
                f"default_action to the input of a player who pressed nothing, or to {{player: action}} "
                f"with an entry for every player.",
            )


def check_observation_space(env: Any, players: tuple[str, ...]) -> None:
    """observation_space is optional; when present it is checked like action_space."""
    if getattr(env, "observation_space", None) is not None:
        _check_space_member(
            env, players, "observation_space", "bad_observation_space",
            "use game.spaces, or leave observation_space out (it is optional).",
        )


# ---------------------------------------------------------------- results


def check_jsonable(value: Any, label: str, at: str = "", finite: bool = False) -> None:
    """Raise `not_jsonable` naming the path, e.g. "step()['info']['hit'] at frame 3: set value ...".

    `finite=True` (observations, info: they travel to the browser) refuses NaN and infinities too.
    """
    try:
        check_encodable(value, finite=finite)
    except StateEncodingError as exc:
        raise EnvCheckError("not_jsonable", f"{label}{exc.path}{at}: {exc.problem}. {JSON_HINT}") from None


def _check_observations(env: Any, observations: dict, label: str, at: str) -> None:
    for player in env.players:
        check_jsonable(observations[player], f"{label}[{player!r}]", at, finite=True)
    if getattr(env, "observation_space", None) is None:
        return
    for player in env.players:
        reason = _observation_space_for(env, player).why_not(observations[player])
        if reason:
            raise EnvCheckError(
                "bad_observation",
                f"{label}[{player!r}]{at} is not in observation_space: {reason}. Fix the observation, "
                f"or the observation_space (it is optional).",
            )


def _observation_space_for(env: Any, player: str) -> Space:
    """The observation space of one player (one space for all, or one per player)."""
    space = env.observation_space
    return space[player] if isinstance(space, Mapping) else space


def check_reset_result(env: Any, observations: Any, where: str) -> None:
    """reset(seed) returns {player: observation} for exactly the players."""
    players = list(env.players)
    if not isinstance(observations, dict):
        raise EnvCheckError(
            "bad_reset_result",
            f"{where} returned a {type(observations).__name__}; it must return a dict "
            f"{{player: observation}} with one entry per player {players}.",
        )
    if set(observations) != set(players):
        raise EnvCheckError(
            "bad_reset_result",
            f"{where} must return one observation per player {players} ({_mismatch(observations, players)}).",
        )
    _check_observations(env, observations, where, "")


def _check_per_player(value: Any, label: str, at: str, players: list[str]) -> None:
    if not isinstance(value, dict) or set(value) != set(players):
        got = _mismatch(value, players) if isinstance(value, dict) else f"got a {type(value).__name__}"
        raise EnvCheckError(
            "bad_step_result", f"{label}{at} must be a dict with one entry per player {players} ({got})."
        )


def check_step_result(env: Any, result: Any, frame: int) -> None:
    """step(actions) returns exactly the contract's keys, with per-player observations and rewards."""
    at = f" at frame {frame}"
    players = list(env.players)
    if not isinstance(result, dict) or set(result) != set(STEP_KEYS):
        got = _mismatch(result, STEP_KEYS) if isinstance(result, dict) else f"got a {type(result).__name__}"
        raise EnvCheckError(
            "bad_step_result", f"step(){at} must return a dict with exactly the keys {list(STEP_KEYS)} ({got})."
        )
    _check_per_player(result["observations"], "step()['observations']", at, players)
    _check_per_player(result["rewards"], "step()['rewards']", at, players)
    for player, reward in result["rewards"].items():
        if not is_finite_number(reward):
            raise EnvCheckError(
                "bad_step_result",
                f"step()['rewards'][{player!r}]{at} is {reward!r:.40}; rewards must be finite numbers "
                f"(int or float, not bool, NaN or numpy scalars); convert with float(...).",
            )
    for key in ("terminated", "truncated"):
        if type(result[key]) is not bool:
            raise EnvCheckError(
                "bad_step_result",
                f"step()[{key!r}]{at} is {result[key]!r:.40} ({type(result[key]).__name__}); it must be "
                f"True or False; convert with bool(...).",
            )
    if not isinstance(result["info"], dict):
        raise EnvCheckError(
            "bad_step_result",
            f"step()['info']{at} is a {type(result['info']).__name__}; it must be a dict (use {{}} when "
            f"there is nothing to report).",
        )
    check_jsonable(result["info"], "step()['info']", at, finite=True)
    _check_observations(env, result["observations"], "step()['observations']", at)
