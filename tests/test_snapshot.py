"""The generic snapshot (game/snapshot.py), alone, under the checker and under the netcode."""
from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from game.checker import trajectory_checksums
from game.hashing import state_hash
from game.snapshot import DeepSnapshots, SnapshotError, capture, has_snapshots, restore_attributes, with_snapshots
from tests.fake_envs import MISSING, check_fails, make_env, toy_step


class Slotted:
    __slots__ = ("frame",)
    players = ("a",)

    def __init__(self) -> None:
        self.frame = 0


class Nothing:
    __slots__ = ()


class Holder:
    """A bag of the values the generic snapshot understands."""

    def __init__(self, seed: int) -> None:
        self.array = np.arange(6, dtype=np.float32).reshape(2, 3)
        self.generator = np.random.default_rng(seed)
        self.random = random.Random(seed)
        self.scalar = np.int64(7)
        self.shared = [1, 2]
        self.alias = self.shared
        self.table = {(1, 2): {"x"}, "@odd": (3, 4)}
        self.inner = Slotted()
        self.callback = len

    def churn(self) -> list[Any]:
        self.array += self.generator.random((2, 3), dtype=np.float32)
        self.shared.append(self.random.randrange(100))
        self.scalar += 1
        self.inner.frame += 1
        self.table[(5,)] = frozenset({"y"})
        return [self.array.tolist(), self.generator.integers(1000), self.random.random(), self.shared, self.alias]


def test_with_snapshots_keeps_envs_that_snapshot_themselves() -> None:
    env = make_env()()
    assert has_snapshots(env)
    assert with_snapshots(env) is env


def test_deep_snapshots_round_trip_in_place_and_on_a_fresh_instance() -> None:
    raw = make_env(get_state=MISSING, set_state=MISSING)()
    env = with_snapshots(raw)
    assert isinstance(env, DeepSnapshots) and env.unwrapped is raw
    assert env.players == ("a", "b")  # delegated
    env.reset(4)
    env.step({"a": 2, "b": 2})
    state = env.get_state()
    assert json.loads(json.dumps(state)) == state    # plain JSON, so the netcode hashes it like any state
    after_one = env.step({"a": 0, "b": 2})
    env.step({"a": 1, "b": 1})
    env.set_state(state)  # rollback on the same instance
    assert env.step({"a": 0, "b": 2}) == after_one
    fresh = with_snapshots(make_env(get_state=MISSING, set_state=MISSING)())
    fresh.set_state(state)  # restore on a new instance
    assert fresh.step({"a": 0, "b": 2}) == after_one
    assert fresh.unwrapped.pos is not raw.pos


def test_numpy_arrays_generators_random_and_slots_round_trip() -> None:
    holder = Holder(3)
    holder.churn()
    state = capture(holder)
    checksum = state_hash(state)
    assert state_hash(capture(Holder(3).__class__(3))) != checksum
    expected = holder.churn()
    holder.churn()
    array = holder.array
    restore_attributes(holder, state)
    assert holder.array is array                       # restored in place
    assert holder.alias is holder.shared               # shared objects stay shared
    assert holder.churn() == expected
    fresh = Holder(99)
    restore_attributes(fresh, state)
    assert state_hash(capture(fresh)) == checksum
    assert fresh.churn() == expected
    assert isinstance(fresh.scalar, np.int64) and fresh.table[(5,)] == frozenset({"y"}) and fresh.callback is len
    restore_attributes(fresh, state)
    assert state_hash(capture(fresh)) == checksum


def test_state_never_aliases_the_live_objects() -> None:
    holder = Holder(1)
    state = capture(holder)
    kept = json.dumps(state, sort_keys=True)
    restore_attributes(holder, state)
    holder.churn()
    assert json.dumps(state, sort_keys=True) == kept


def test_what_cannot_be_copied_is_refused_with_the_fix() -> None:
    with pytest.raises(SnapshotError, match="no attributes the generic snapshot can copy"):
        with_snapshots(Nothing())
    env = with_snapshots(make_env(get_state=MISSING, set_state=MISSING)())
    env.unwrapped.moves = iter([1, 2, 3])
    with pytest.raises(SnapshotError, match=r"attribute FakeEnv.moves is a list_iterator.*implement get_state"):
        env.get_state()
    assert isinstance(with_snapshots(Slotted()).get_state(), dict)


def test_the_checker_says_up_front_when_a_game_cannot_be_snapshotted() -> None:
    def reset(self: Any, seed: int) -> dict:
        self.frames = (n for n in range(1000))
        return {p: {"pos": 0, "frame": 0} for p in self.players}

    message = check_fails(make_env(reset=reset, get_state=MISSING, set_state=MISSING), "not_snapshottable")
    assert message.startswith("FakeEnv has no get_state/set_state, and the generic snapshot cannot copy it: "
                              "the env's attribute FakeEnv.frames is a generator")
    assert "implement get_state() and set_state(state) on it" in message


def test_generic_snapshot_still_catches_nondeterminism() -> None:
    shared = {"steps": 0}

    def step(self: Any, actions: dict) -> dict:
        shared["steps"] += 1
        self.pos["b"] += shared["steps"] % 2
        return toy_step(self, actions)

    message = check_fails(make_env(step=step, get_state=MISSING, set_state=MISSING), "nondeterministic")
    assert message.startswith("Two instances with the same seed (0) and the same inputs diverged at frame 1: ")


def test_trajectory_checksums_are_reproducible() -> None:
    env = make_env()
    checksums = trajectory_checksums(env, None, frames=20, seed=1)
    assert len(checksums) == 21
    assert checksums == trajectory_checksums(env, None, frames=20, seed=1)
    assert checksums != trajectory_checksums(env, None, frames=20, seed=2)
    generic = make_env(get_state=MISSING, set_state=MISSING)
    assert trajectory_checksums(generic, None, frames=20, seed=1) == trajectory_checksums(generic, None, 20, 1)
