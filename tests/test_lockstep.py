"""game/lockstep.py: the one re-simulation of a seed and recorded inputs, frame by frame."""
from __future__ import annotations

import pytest

from game.games.pong import Pong
from game.hashing import state_hash
from game.lockstep import Lockstep, checksums
from game.policies import RandomPolicy

PLAYERS = ("left", "right")


def recorded_inputs(frames: int, seed: int = 3) -> list[list[int]]:
    env = Pong()
    policies = {p: RandomPolicy() for p in PLAYERS}
    for index, (player, policy) in enumerate(policies.items()):
        policy.setup(player, env.action_space, seed + index)
    return [[policies[p].act(None) for p in PLAYERS] for _ in range(frames)]


def by_hand(seed: int, inputs: list[list[int]]) -> list[str]:
    """The loop every caller used to write: reset, then hash and step."""
    env = Pong()
    env.reset(seed)
    hashes = [state_hash(env.get_state())]
    for actions in inputs:
        env.step(dict(zip(PLAYERS, actions)))
        hashes.append(state_hash(env.get_state()))
    return hashes


def test_frames_visit_every_state_from_reset_to_the_last_step() -> None:
    inputs = recorded_inputs(50)
    sim = Lockstep(Pong(), 7, PLAYERS, inputs)
    seen = [(frame, sim.checksum()) for frame in sim.frames()]
    assert [frame for frame, _ in seen] == list(range(51))
    assert [checksum for _, checksum in seen] == by_hand(7, inputs)
    assert sim.done and sim.frame == 50


def test_checksums_selects_frames_and_accepts_player_dicts() -> None:
    inputs = recorded_inputs(30)
    as_dicts = [dict(zip(PLAYERS, actions)) for actions in inputs]
    every = by_hand(1, inputs)
    assert list(checksums(Lockstep(Pong(), 1, PLAYERS, inputs)).values()) == every
    assert checksums(Lockstep(Pong(), 1, PLAYERS, as_dicts), at=lambda f: f % 10 == 0) == {
        0: every[0], 10: every[10], 20: every[20], 30: every[30]}


def test_length_cuts_the_episode_and_step_results_are_kept() -> None:
    inputs = recorded_inputs(40)
    sim = Lockstep(Pong(), 2, PLAYERS, inputs, length=12)
    assert sim.observations is not None and sim.result is None
    assert sim.actions() == dict(zip(PLAYERS, inputs[0]))
    result = sim.step()
    assert sim.frame == 1 and sim.observations == result["observations"]
    assert sim.result is result
    sim.run_to(100)
    assert sim.frame == 12 and sim.done and sim.checksum() == by_hand(2, inputs)[12]
    with pytest.raises(IndexError, match="last one"):
        sim.step()
    assert Lockstep(Pong(), 2, PLAYERS, inputs[:5], length=12).length == 5
