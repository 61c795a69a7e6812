"""Tests of the env checker (game/checker.py), the pickle snapshot fallback
(game/snapshot.py) and the `coplay check-env` command.

Like Gymnasium's checker tests, the envs are built by `make_env` from the functions of
a small correct toy game, with one member replaced (or removed) to break one rule.
"""
from __future__ import annotations

import json
import random
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

from game.checker import CheckReport, EnvCheckError, check_env, sample_inputs, trajectory_checksums
from game.rng import Rng
from game.snapshot import PickleSnapshots, has_snapshots, with_snapshots
from game.spaces import Box, Dict, Discrete

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

# ---------------------------------------------------------------- envs that pass


def test_toy_env_passes_and_reports() -> None:
    report = check_env(make_env(), frames=100, seed=3)
    assert isinstance(report, CheckReport)
    assert report.env_name == "FakeEnv"
    assert report.players == ("a", "b")
    assert (report.frames, report.seed) == (100, 3)
    assert report.episodes == 3  # 40-frame episodes: frames 0-40, 40-80, 80-100
    assert report.pickle_fallback is False
    assert report.step_us > 0 and report.get_state_us > 0 and report.state_hash_us > 0


def test_episodes_restart_with_seed_plus_episode() -> None:
    seeds: list[int] = []

    def reset(self: Any, seed: int) -> dict:
        seeds.append(seed)
        return toy_reset(self, seed)

    report = check_env(make_env(reset=reset), config={"episode_length": 10}, frames=35, seed=5)
    assert report.episodes == 4
    assert sorted(set(seeds)) == [5, 6, 7, 8]


def test_per_player_spaces_and_defaults_pass() -> None:
    env = make_env(
        action_space={"a": Discrete(3), "b": Discrete(2, start=1)},
        default_action={"a": 1, "b": 1},
        observation_space=Dict({"pos": Box(-10_000, 10_000, integer=True), "frame": Discrete(41)}),
        render=MISSING,
    )
    assert check_env(env, frames=50).players == ("a", "b")


def test_one_frame_is_enough() -> None:
    assert check_env(make_env(), frames=1).frames == 1


def test_env_without_snapshots_passes_through_pickle_fallback() -> None:
    report = check_env(make_env(get_state=MISSING, set_state=MISSING), frames=100)
    assert report.pickle_fallback is True


def test_checker_leaves_global_random_alone() -> None:
    random.seed(1234)
    expected = random.getstate()
    check_env(make_env(), frames=20)
    assert random.getstate() == expected


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="frames must be an int >= 1, got 0"):
        check_env(make_env(), frames=0)
    with pytest.raises(TypeError, match="pass MyGame, not MyGame()"):
        check_env(make_env()())  # type: ignore[arg-type]


def test_sample_inputs_are_valid_and_reproducible() -> None:
    env = make_env(action_space={"a": Discrete(3), "b": Box(0, 1, (2,))}, default_action={"a": 1, "b": [0, 0]})()
    inputs = sample_inputs(env, 50, seed=9)
    assert inputs == sample_inputs(env, 50, seed=9)
    assert all(env.action_space[p].contains(actions[p]) for actions in inputs for p in ("a", "b"))
    assert any(actions["a"] == 1 for actions in inputs)  # defaults appear


# ---------------------------------------------------------------- members


@pytest.mark.parametrize("method", ["reset", "step"])
def test_missing_method(method: str) -> None:
    message = check_fails(make_env(**{method: MISSING}), "missing_member")
    assert message == (
        f"FakeEnv has no {method}() method. Every env needs reset(seed) -> {{player: observation}} and "
        "step(actions) -> {'observations', 'rewards', 'terminated', 'truncated', 'info'} (see game/env.py)."
    )


def test_get_state_without_set_state() -> None:
    assert check_fails(make_env(set_state=MISSING), "missing_member") == (
        "FakeEnv has get_state() but no set_state(). Implement both, or neither to use the (much slower) "
        "pickle fallback of game/snapshot.py."
    )


def test_constructor_without_config() -> None:
    def init(self: Any) -> None:
        toy_init(self)

    assert check_fails(make_env(__init__=init), "bad_constructor") == (
        "FakeEnv(config) cannot be called with one argument; the constructor must accept the match config: "
        "def __init__(self, config: dict | None = None)."
    )


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("players", "FakeEnv has no `players`. Add the fixed, ordered player ids, e.g. players = ('left', 'right')."),
        (
            "action_space",
            "FakeEnv has no `action_space`. Add one from game.spaces, e.g. action_space = Discrete(5), "
            "or {player: space} for one per player.",
        ),
        (
            "default_action",
            "FakeEnv has no `default_action`. Add the input of a player who pressed nothing, e.g. "
            "default_action = 0 (or {player: action}).",
        ),
    ],
)
def test_missing_attribute(member: str, message: str) -> None:
    assert check_fails(make_env(**{member: MISSING}), "missing_member") == message


@pytest.mark.parametrize("players", ["ab", (), ("a", 1), None])
def test_players_must_be_a_tuple_of_str(players: Any) -> None:
    message = check_fails(make_env(players=players), "bad_players")
    assert message == (
        f"FakeEnv.players must be a non-empty tuple of str player ids, e.g. ('left', 'right'); got {players!r}."
    )


def test_players_must_be_unique() -> None:
    assert check_fails(make_env(players=["a", "b", "a"]), "bad_players") == (
        "FakeEnv.players lists ['a'] more than once; player ids must be unique."
    )


def test_action_space_must_be_a_space() -> None:
    assert check_fails(make_env(action_space=3), "bad_action_space") == (
        "FakeEnv.action_space is a int, not a game.spaces.Space or a {player: Space} dict; "
        "use e.g. Discrete(5) from game.spaces."
    )


def test_action_space_dict_must_cover_every_player() -> None:
    env = make_env(action_space={"a": Discrete(3), "c": Discrete(3)})
    assert check_fails(env, "bad_action_space") == (
        "FakeEnv.action_space is a dict, so it needs exactly one space per player ['a', 'b'] "
        "(missing ['b'], unexpected ['c'])."
    )


def test_action_space_dict_values_must_be_spaces() -> None:
    env = make_env(action_space={"a": Discrete(3), "b": range(3)})
    assert check_fails(env, "bad_action_space") == (
        "FakeEnv.action_space['b'] is a range, not a game.spaces.Space; use Discrete, Box, Dict or Tuple "
        "from game.spaces."
    )


@pytest.mark.parametrize(
    ("default", "reason"),
    [(7, "7 is outside [0, 2]"), ({"a": 1}, "expected an int, got dict {'a': 1}")],
)
def test_default_action_must_be_in_the_action_space(default: Any, reason: str) -> None:
    assert check_fails(make_env(default_action=default), "bad_default_action") == (
        f"FakeEnv.default_action for player 'a' is not in its action space: {reason}. Set default_action "
        "to the input of a player who pressed nothing, or to {player: action} with an entry for every player."
    )


def test_observation_space_must_be_a_space() -> None:
    assert check_fails(make_env(observation_space="pixels"), "bad_observation_space") == (
        "FakeEnv.observation_space is a str, not a game.spaces.Space or a {player: Space} dict; "
        "use game.spaces, or leave observation_space out (it is optional)."
    )


def test_observations_must_lie_in_the_observation_space() -> None:
    env = make_env(observation_space=Dict({"pos": Box(-5, 5, integer=True), "frame": Discrete(41)}))
    message = check_fails(env, "bad_observation")
    assert message.startswith("step()['observations']['")
    assert "is not in observation_space: ['pos']: " in message
    assert message.endswith("Fix the observation, or the observation_space (it is optional).")


# ---------------------------------------------------------------- results


def test_reset_must_return_a_dict() -> None:
    assert check_fails(make_env(reset=lambda self, seed: [0, 0]), "bad_reset_result") == (
        "reset(0) returned a list; it must return a dict {player: observation} with one entry per player ['a', 'b']."
    )


def test_reset_must_cover_exactly_the_players() -> None:
    def reset(self: Any, seed: int) -> dict:
        return {"a": toy_reset(self, seed)["a"], "c": 0}

    assert check_fails(make_env(reset=reset), "bad_reset_result") == (
        "reset(0) must return one observation per player ['a', 'b'] (missing ['b'], unexpected ['c'])."
    )


def test_step_must_return_the_contract_keys() -> None:
    def step(self: Any, actions: dict) -> dict:
        result = toy_step(self, actions)
        del result["info"]
        result["done"] = False
        return result

    assert check_fails(make_env(step=step), "bad_step_result") == (
        "step() at frame 1 must return a dict with exactly the keys ['observations', 'rewards', "
        "'terminated', 'truncated', 'info'] (missing ['info'], unexpected ['done'])."
    )


def test_step_must_return_a_dict() -> None:
    step = lambda self, actions: (toy_step(self, actions)["observations"], 0.0, False, False, {})  # noqa: E731
    assert check_fails(make_env(step=step), "bad_step_result") == (
        "step() at frame 1 must return a dict with exactly the keys ['observations', 'rewards', "
        "'terminated', 'truncated', 'info'] (got a tuple)."
    )


@pytest.mark.parametrize(
    ("fixes", "message"),
    [
        (
            {"observations": {"a": 0}},
            "step()['observations'] at frame 1 must be a dict with one entry per player ['a', 'b'] (missing ['b']).",
        ),
        (
            {"rewards": 1.0},
            "step()['rewards'] at frame 1 must be a dict with one entry per player ['a', 'b'] (got a float).",
        ),
        (
            {"rewards": {"a": 1.0, "b": True}},
            "step()['rewards']['b'] at frame 1 is True; rewards must be finite numbers (int or float, not "
            "bool, NaN or numpy scalars); convert with float(...).",
        ),
        (
            {"rewards": {"a": float("nan"), "b": 0}},
            "step()['rewards']['a'] at frame 1 is nan; rewards must be finite numbers (int or float, not "
            "bool, NaN or numpy scalars); convert with float(...).",
        ),
        (
            {"terminated": 0},
            "step()['terminated'] at frame 1 is 0 (int); it must be True or False; convert with bool(...).",
        ),
        (
            {"truncated": None},
            "step()['truncated'] at frame 1 is None (NoneType); it must be True or False; convert with bool(...).",
        ),
        (
            {"info": None},
            "step()['info'] at frame 1 is a NoneType; it must be a dict (use {} when there is nothing to report).",
        ),
    ],
)
def test_step_result_parts(fixes: dict, message: str) -> None:
    assert check_fails(make_env(step=replaced(toy_step, **fixes)), "bad_step_result") == message


# ---------------------------------------------------------------- JSON-able values


def test_observations_must_be_jsonable() -> None:
    def reset(self: Any, seed: int) -> dict:
        observations = toy_reset(self, seed)
        observations["b"]["tags"] = {"x"}
        return observations

    assert check_fails(make_env(reset=reset), "not_jsonable") == (
        f"reset(0)['b']['tags']: set value {{'x'}} is not encodable. {JSON_HINT}"
    )


def test_observations_and_info_must_be_finite() -> None:
    env = make_env(step=replaced(toy_step, info={"speed": [1.0, float("nan")]}))
    assert check_fails(env, "not_jsonable") == (
        f"step()['info']['speed'][1] at frame 1: nan is not a finite number (JSON in browsers has no NaN or "
        f"Infinity). {JSON_HINT}"
    )


def test_info_must_be_jsonable() -> None:
    env = make_env(step=replaced(toy_step, info={"hits": [1, (2, 3j)]}))
    assert check_fails(env, "not_jsonable") == (
        f"step()['info']['hits'][1][1] at frame 1: complex value 3j is not encodable. {JSON_HINT}"
    )


def test_state_must_be_jsonable() -> None:
    def get_state(self: Any) -> dict:
        return {**toy_get_state(self), "seen": {1, 2}}

    assert check_fails(make_env(get_state=get_state), "not_jsonable") == (
        f"get_state()['seen'] at frame 0: set value {{1, 2}} is not encodable. {JSON_HINT}"
    )


# ---------------------------------------------------------------- determinism and snapshots


def test_state_shared_between_instances_is_nondeterministic() -> None:
    shared = {"steps": 0}  # like a class attribute or module global that every instance changes

    def step(self: Any, actions: dict) -> dict:
        shared["steps"] += 1
        self.pos["a"] += shared["steps"] % 2
        return toy_step(self, actions)

    assert check_fails(make_env(step=step), "nondeterministic") == (
        "Two instances with the same seed (0) and the same inputs diverged at frame 1: get_state()['pos']['a'] "
        "is 2 in the first and 1 in the second. A game must depend only on its seed and inputs: keep "
        "randomness in a seeded generator saved in get_state() (e.g. game.rng.Rng), and don't use the wall "
        "clock, os.urandom, id() or state shared between instances (class attributes, module globals)."
    )


def test_unseeded_generator_is_nondeterministic() -> None:
    def reset(self: Any, seed: int) -> dict:
        observations = toy_reset(self, seed)
        self.rng = Rng(random.SystemRandom().getrandbits(64))
        return observations

    message = check_fails(make_env(reset=reset), "nondeterministic")
    assert message.startswith("Two instances with the same seed (0) and the same inputs diverged at frame 0: ")
    assert "get_state()['rng'] is " in message


def test_get_state_must_capture_everything() -> None:
    def get_state(self: Any) -> dict:
        return {"frame": self.frame, "pos": dict(self.pos)}  # forgets the RNG

    def set_state(self: Any, state: dict) -> None:
        self.frame, self.pos = state["frame"], dict(state["pos"])

    assert check_fails(make_env(get_state=get_state, set_state=set_state), "set_state_diverges") == (
        "A fresh instance given set_state() of the frame-150 snapshot diverged from the original at frame "
        "152: get_state()['pos']['b'] is 18 in the original and 17 in the restored copy. get_state() must "
        "capture everything step() depends on (positions, counters, RNG state, per-episode settings) and "
        "set_state() must restore all of it, also on an instance whose reset() was never called."
    )


def test_state_missing_what_observations_show() -> None:
    def step(self: Any, actions: dict) -> dict:
        self.score = getattr(self, "score", 0) + actions["a"]
        result = toy_step(self, actions)
        result["observations"]["a"]["score"] = self.score
        return result

    message = check_fails(make_env(step=step), "set_state_diverges")
    assert message.startswith(
        "A fresh instance given set_state() of the frame-150 snapshot diverged from the original at frame "
        "151: observations['a']['score'] is "
    )


def test_get_state_returning_own_objects_is_aliasing() -> None:
    def get_state(self: Any) -> dict:
        return {"frame": self.frame, "pos": self.pos, "rng": self.rng.getstate()}

    assert check_fails(make_env(get_state=get_state), "snapshot_aliasing") == (
        "The snapshot taken by get_state() at frame 0 changed when step() ran (get_state()['pos']['a'] went "
        "from 0 to 1): get_state() returns the game's own lists or dicts, so the snapshots the netcode keeps "
        "get corrupted. Return copies, e.g. list(self.pos), dict(self.scores) or copy.deepcopy(...)."
    )


def test_set_state_keeping_the_snapshot_is_aliasing() -> None:
    def set_state(self: Any, state: dict) -> None:
        self.frame, self.pos = state["frame"], state["pos"]  # no copy: step() changes the snapshot
        self.rng.setstate(state["rng"])

    assert check_fails(make_env(set_state=set_state), "snapshot_aliasing") == (
        "set_state() keeps using the snapshot it was given: after restoring the frame-0 snapshot and "
        "stepping, the snapshot itself changed (get_state()['pos']['a'] went from 0 to 6). The netcode may "
        "restore one snapshot several times, so set_state() must copy what it keeps, e.g. "
        "self.pos = list(state['pos'])."
    )


def test_cache_outside_the_state_breaks_rollback() -> None:
    # Bonuses are drawn once per frame number and cached: a fresh instance draws them like the
    # original did, but after a rollback the cached bonuses skip the RNG draws.
    def step(self: Any, actions: dict) -> dict:
        if not hasattr(self, "bonus"):
            self.bonus = {}
        if self.frame not in self.bonus:
            self.bonus[self.frame] = self.rng.randbelow(3)
        self.pos["a"] += self.bonus[self.frame]
        return toy_step(self, actions)

    message = check_fails(make_env(step=step), "rollback_mismatch", config={"episode_length": 1000})
    assert message == (
        "After a rollback to frame 0 (set_state() on the same instance, then the same inputs again), frame 1 "
        "differs: get_state()['pos']['a'] is 1 the first time and 2 after the rollback. set_state() must "
        "reset everything step() reads, including caches and counters kept outside get_state(); the netcode "
        "rolls back like this whenever a prediction was wrong."
    )


# ---------------------------------------------------------------- global random, render, exceptions


RANDOM_HINT = (
    "Games must not call random.random(), random.randint(), random.seed() and the like; keep a seeded "
    "generator in the game (e.g. self.rng = game.rng.Rng(seed)) and save its state in get_state()."
)


def test_global_random_in_step() -> None:
    def step(self: Any, actions: dict) -> dict:
        self.pos["a"] += random.randint(0, 1)
        return toy_step(self, actions)

    random.seed(99)
    expected = random.getstate()
    message = check_fails(make_env(step=step), "global_random")
    assert message == (
        "step() at frame 1 (actions {'a': 1, 'b': 1}) used the global `random` module (its state changed). "
        + RANDOM_HINT
    )
    assert random.getstate() == expected  # restored


def test_global_random_seeded_in_reset() -> None:
    def reset(self: Any, seed: int) -> dict:
        random.seed(seed)
        return toy_reset(self, seed)

    assert check_fails(make_env(reset=reset), "global_random") == (
        "reset(0) used the global `random` module (its state changed). " + RANDOM_HINT
    )


def test_render_must_return_valid_primitives() -> None:
    env = make_env(render=lambda self: [{"type": "rect", "x": 0, "y": 0, "w": 5, "color": "red"}])
    assert check_fails(env, "bad_render") == (
        "render()[0] (rect) is missing the field 'h' (at frame 0). See game/render.py for the primitives "
        "and their fields."
    )


def test_render_must_not_change_the_state() -> None:
    def render(self: Any) -> list:
        self.frame += 0.5
        return []

    assert check_fails(make_env(render=render), "render_changes_state") == (
        "render() at frame 0 changed get_state(). render() must only read the game: the browser may call it "
        "any number of times, or never."
    )


def test_exception_in_step_is_reported_with_its_cause() -> None:
    def step(self: Any, actions: dict) -> dict:
        if self.frame == 2:
            return {"oops": 1 / 0}
        return toy_step(self, actions)

    with pytest.raises(EnvCheckError) as caught:
        check_env(make_env(step=step))
    assert caught.value.code == "env_raised"
    assert caught.value.message == (
        "step() at frame 3 (actions {'a': 0, 'b': 1}) raised ZeroDivisionError: division by zero"
    )
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


# ---------------------------------------------------------------- the pickle fallback


class SlottedEnv:
    __slots__ = ("frame",)
    players = ("a",)


def test_with_snapshots_keeps_envs_that_snapshot_themselves() -> None:
    env = make_env()()
    assert has_snapshots(env)
    assert with_snapshots(env) is env


def test_pickle_snapshots_round_trip() -> None:
    raw = make_env(get_state=MISSING, set_state=MISSING)()
    env = with_snapshots(raw)
    assert isinstance(env, PickleSnapshots) and env.unwrapped is raw
    assert env.players == ("a", "b")  # delegated
    env.reset(4)
    env.step({"a": 2, "b": 2})
    state = env.get_state()
    assert isinstance(state, str) and json.loads(json.dumps(state)) == state
    after_one = env.step({"a": 0, "b": 2})
    env.step({"a": 1, "b": 1})
    env.set_state(state)  # rollback on the same instance
    assert env.step({"a": 0, "b": 2}) == after_one
    fresh = with_snapshots(make_env(get_state=MISSING, set_state=MISSING)())
    fresh.set_state(state)  # restore on a new instance
    assert fresh.step({"a": 0, "b": 2}) == after_one
    assert fresh.unwrapped.pos is not raw.pos


def test_pickle_snapshots_explain_their_limits() -> None:
    with pytest.raises(TypeError, match="uses __slots__.*implement get_state"):
        with_snapshots(SlottedEnv())
    env = with_snapshots(make_env(get_state=MISSING, set_state=MISSING)())
    env.unwrapped.callback = lambda: None
    with pytest.raises(TypeError, match="cannot pickle the attributes of FakeEnv"):
        env.get_state()


def test_pickle_fallback_still_catches_nondeterminism() -> None:
    shared = {"steps": 0}

    def step(self: Any, actions: dict) -> dict:
        shared["steps"] += 1
        self.pos["b"] += shared["steps"] % 2
        return toy_step(self, actions)

    message = check_fails(make_env(step=step, get_state=MISSING, set_state=MISSING), "nondeterministic")
    assert message.startswith(
        "Two instances with the same seed (0) and the same inputs diverged at frame 1: "
        "observations['b']['pos'] is "
    )


def test_trajectory_checksums_are_reproducible() -> None:
    env = make_env()
    checksums = trajectory_checksums(env, None, frames=20, seed=1)
    assert len(checksums) == 21
    assert checksums == trajectory_checksums(env, None, frames=20, seed=1)
    assert checksums != trajectory_checksums(env, None, frames=20, seed=2)


# ---------------------------------------------------------------- the command line

TOY_FILE = '''
from game.rng import Rng
from game.spaces import Discrete


class Toy:
    players = ("left", "right")
    action_space = Discrete(3)
    default_action = 1

    def __init__(self, config=None):
        self.length = (config or {}).get("episode_length", 40)
        self.rng = Rng(0)
        self.frame = 0
        self.pos = {}

    def reset(self, seed):
        self.rng = Rng(seed)
        self.frame = 0
        self.pos = {p: 0 for p in self.players}
        return self.observations()

    def observations(self):
        return {p: [self.pos[p], self.frame] for p in self.players}

    def step(self, actions):
        self.frame += 1
        for p in self.players:
            self.pos[p] += actions[p] - 1 + self.rng.randbelow(2) + self.extra(p)
        return {"observations": self.observations(), "rewards": {p: 0 for p in self.players},
                "terminated": self.frame >= self.length, "truncated": False, "info": {}}

    def extra(self, player):
        return 0

    def get_state(self):
        return {"frame": self.frame, "pos": dict(self.pos), "rng": self.rng.getstate()}

    def set_state(self, state):
        self.frame, self.pos = state["frame"], dict(state["pos"])
        self.rng.setstate(state["rng"])
'''

BROKEN_FILES = {
    # iterates a set of strings: same in one process, different with another PYTHONHASHSEED
    "by_hash": '''
TAGS = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}

class ByHash(Toy):
    def extra(self, player):
        return len(next(iter(TAGS))) if player == "left" else 0
''',
    "uses_time": '''
import time

class UsesTime(Toy):
    def extra(self, player):
        return time.perf_counter_ns() % 7
''',
    "crashes": '''
class Crashes(Toy):
    def extra(self, player):
        if self.frame == 5:
            raise RuntimeError("the ball left the field")
        return 0
''',
}


@pytest.fixture
def coplay(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """`app.cli.main`, with sys.path restored afterwards (load_class adds the game file's folder)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    from app import cli

    return cli.main


def write_game(folder: Path, name: str) -> str:
    """Write the toy (plus one broken subclass) to FOLDER/NAME.py; return its path."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(TOY_FILE) + textwrap.dedent(BROKEN_FILES.get(name, "")))
    return str(path)


def test_cli_passing_game(coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_game(tmp_path, "good_game") + ":Toy"
    assert coplay(["check-env", spec, "--frames", "60", "--seed", "2", "--config", '{"episode_length": 25}']) == 0
    out = capsys.readouterr().out
    assert "check-env: Toy passed (60 frames, 3 episodes, seed 2)" in out
    assert "  players:    left, right\n" in out
    assert "  snapshots:  get_state/set_state\n" in out
    assert "  mean time:  step " in out and " µs, get_state " in out and " µs, state_hash " in out
    assert "  hash seed:  same trajectory with PYTHONHASHSEED=1 and 2\n" in out


def test_cli_reports_the_pickle_fallback(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "no_snapshots.py"
    path.write_text(textwrap.dedent(TOY_FILE) + "\ndel Toy.get_state, Toy.set_state\n")
    assert coplay(["check-env", f"{path}:Toy", "--frames", "30", "--no-hash-seed-check"]) == 0
    out = capsys.readouterr().out
    assert "  snapshots:  pickle fallback (no get_state/set_state): much slower" in out
    assert "hash seed" not in out


def test_cli_catches_string_hash_dependence(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_game(tmp_path, "by_hash") + ":ByHash"
    assert coplay(["check-env", spec, "--frames", "30"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "check-env: ByHash FAILED [hash_seed_dependent]\n"
        "The game is not deterministic across Python processes: with PYTHONHASHSEED=1 and PYTHONHASHSEED=2, "
        "the same seed and inputs diverge at frame 1. The game depends on the hash of strings, which differs "
        "in every process and browser: don't iterate over a set or frozenset of strings or call hash() on "
        "them; use a list, a dict, or sorted(...).\n"
    )


def test_cli_failing_check(coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_game(tmp_path, "uses_time") + ":UsesTime"
    assert coplay(["check-env", spec, "--frames", "30"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("check-env: UsesTime FAILED [nondeterministic]\nTwo instances with the same seed")


def test_cli_prints_the_games_traceback(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_game(tmp_path, "crashes") + ":Crashes"
    assert coplay(["check-env", spec, "--no-hash-seed-check"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert "crashes.py" in err and "RuntimeError: the ball left the field" in err
    assert "check-env: Crashes FAILED [env_raised]\nstep() at frame 5 (actions " in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{dir}/missing.py:Toy"], "check-env: no such file: {dir}/missing.py\n"),
        (["{dir}/good_game.py:Nope"], "check-env: {dir}/good_game.py has no class named 'Nope'\n"),
        (
            ["{dir}/good_game.py"],
            "check-env: '{dir}/good_game.py' is not of the form FILE.py:Class or package.module:Class\n",
        ),
        (["{dir}/good_game.py:Toy", "--config", "[1]"], "check-env: --config must be a JSON object, got list\n"),
    ],
)
def test_cli_usage_errors(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    write_game(tmp_path, "good_game")
    assert coplay(["check-env", *(arg.format(dir=tmp_path) for arg in argv)]) == 2
    assert capsys.readouterr().err == message.format(dir=tmp_path)


def test_cli_rejects_bad_frames(coplay: Callable[..., int], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        coplay(["check-env", "x.py:Toy", "--frames", "0"])
    assert caught.value.code == 2
    assert "argument --frames: must be a whole number >= 1, got '0'" in capsys.readouterr().err


SINE_GAME = """
import math

class Sine(Toy):
    def get_state(self):
        return {**super().get_state(), "wave": [math.sin(self.frame * 0.37 + k * 1.3) for k in range(200)]}
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH, so Pyodide cannot run")
def test_cli_pyodide_runtime_passes_a_portable_game(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_game(tmp_path, "good_game") + ":Toy"
    assert coplay(["check-env", spec, "--frames", "60", "--no-hash-seed-check", "--runtime", "pyodide"]) == 0
    assert "  pyodide:    same checksums as CPython at every frame\n" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH, so Pyodide cannot run")
def test_cli_pyodide_runtime_catches_transcendental_floats(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sine.py"
    path.write_text(textwrap.dedent(TOY_FILE) + textwrap.dedent(SINE_GAME))
    assert coplay(["check-env", f"{path}:Sine", "--frames", "30", "--no-hash-seed-check", "--runtime", "pyodide"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("check-env: Sine FAILED [runtime_mismatch]\nCPython and Pyodide diverge at frame 0 (checksum ")
    assert "use integer or + - * / sqrt arithmetic instead." in err
