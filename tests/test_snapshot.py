"""The pickle snapshot fallback (game/snapshot.py), alone and under the checker."""
from __future__ import annotations

import json
from typing import Any

import pytest

from game.checker import trajectory_checksums
from game.snapshot import PickleSnapshots, has_snapshots, with_snapshots
from tests.fake_envs import MISSING, check_fails, make_env, toy_step


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
