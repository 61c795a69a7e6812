"""Tests of the env checker (game/checker.py): one deliberately broken env per rule,
with the checker's message pinned.

Like Gymnasium's checker tests, the envs are built by `make_env` from the functions of
a small correct toy game, with one member replaced (or removed) to break one rule.
"""
from __future__ import annotations

import random
from typing import Any

import pytest

from game.checker import CheckReport, EnvCheckError, check_env, sample_inputs
from game.rng import Rng
from game.spaces import Box, Dict, Discrete

from tests.fake_envs import (
    JSON_HINT, MISSING, check_fails, make_env, replaced, toy_get_state, toy_init, toy_reset, toy_set_state, toy_step,
)

# ---------------------------------------------------------------- envs that pass


def test_toy_env_passes_and_reports() -> None:
    report = check_env(make_env(), frames=100, seed=3)
    assert isinstance(report, CheckReport)
    assert report.env_name == "FakeEnv"
    assert report.players == ("a", "b")
    assert (report.frames, report.seed) == (100, 3)
    assert report.episodes == 3  # 40-frame episodes: frames 0-40, 40-80, 80-100
    assert report.generic_snapshot is False
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


def test_env_without_snapshots_passes_through_the_generic_snapshot() -> None:
    report = check_env(make_env(get_state=MISSING, set_state=MISSING), frames=100)
    assert report.generic_snapshot is True


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
        "FakeEnv has get_state() but no set_state(). Implement both, or neither to use the (slower) "
        "generic snapshot of game/snapshot.py."
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


def test_state_at_the_last_frame_of_an_episode_is_compared_across_set_state() -> None:
    """Issue 13: a set_state that aliases one list into two attributes differs only in the state at an
    episode's last frame (the reset right after wipes it); the checker used to compare only after that reset."""
    def init(self: Any, config: dict | None = None) -> None:
        toy_init(self, config)
        self.trail, self.history = [], []

    def reset(self: Any, seed: int) -> dict:
        self.trail, self.history = [], []
        return toy_reset(self, seed)

    def step(self: Any, actions: dict) -> dict:
        result = toy_step(self, actions)
        if result["terminated"]:
            self.trail.append(self.frame)
        return result

    def get_state(self: Any) -> dict:
        return {**toy_get_state(self), "trail": list(self.trail), "history": list(self.history)}

    def set_state(self: Any, state: dict) -> None:
        toy_set_state(self, state)
        self.trail = list(state["trail"])
        self.history = self.trail   # the bug: from now on both names are one list

    message = check_fails(make_env(__init__=init, reset=reset, step=step, get_state=get_state,
                                   set_state=set_state), "set_state_diverges")
    assert message.startswith(
        "A fresh instance given set_state() of the frame-150 snapshot diverged from the original at frame 160: "
        "len(last_frame_state['history']) is 0 in the original and 1 in the restored copy.")


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
