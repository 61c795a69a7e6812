"""The in-band checksums of an episode's last frames, when a peer's last inputs come late.

A peer that reaches the end of the episode on predicted inputs holds there; the late inputs
roll it back and it saves the end frame again. Every checksum a peer finalizes (and so sends)
must be the one a lockstep re-simulation of the confirmed inputs gives, the end frame's too,
since the server's referee and wire participants compute it that way.
"""
from __future__ import annotations

from typing import Any

import pytest

from game.lockstep import Lockstep
from netcode.episode import EpisodeRunner
from netcode.p2p import P2PSession
from netcode.scheduler import MAX_CATCH_UP
from netcode.sim import PROFILES, SimNetwork, VirtualClock
from tests.netcode_fixtures import tally_config
from tests.tally import Tally

FRAMES = 40          # the episode is truncated after this many steps
CHECK_EVERY = 10     # so the end frame is a check frame
FRAME_MS = 1000 / 60


class Truncated(Tally):
    """A Tally that is truncated after FRAMES steps whatever the inputs (as the kitchen scene is)."""

    def step(self, actions: dict[str, Any]) -> dict[str, Any]:
        result = super().step(actions)
        result["truncated"] = self.frame >= FRAMES
        return result


def lockstep_checksums(inputs: list[dict[str, Any]]) -> dict[int, str]:
    """The check frames' checksums of the game stepped with `inputs`, the end frame's included."""
    sim = Lockstep(Truncated(), 0, ["p0", "p1"], inputs)
    checksums = {0: sim.checksum()}
    while not sim.done:
        sim.step()
        if sim.frame % CHECK_EVERY == 0:
            checksums[sim.frame] = sim.checksum()
    return checksums


def play(profile: str, seed: int, late_from: int, late_ticks: int) -> tuple[dict[str, dict[int, set[str]]], dict[str, EpisodeRunner]]:
    """Peer a ticks every frame; from its tick `late_from` peer b is held for `late_ticks` ticks, then
    catches up MAX_CATCH_UP ticks a round (as a loaded server's bot does). b changes its input every
    few frames, so a's predictions near the end are wrong. Returns every checksum each peer finalized."""
    clock = VirtualClock()
    network = SimNetwork(PROFILES[profile], seed, clock)
    config = tally_config(2, desync_interval=CHECK_EVERY, disconnect_timeout_ms=60_000, disconnect_notify_ms=30_000)
    sessions = {"a": P2PSession(config, ["p0"], {"b": ["p1"]}, network.endpoint("a"), clock, keep_confirmed_log=True),
                "b": P2PSession(config, ["p1"], {"a": ["p0"]}, network.endpoint("b"), clock, keep_confirmed_log=True)}
    envs = {name: Truncated() for name in sessions}
    runners = {name: EpisodeRunner(session, envs[name], envs[name].reset(0)) for name, session in sessions.items()}
    finalized: dict[str, dict[int, set[str]]] = {"a": {}, "b": {}}
    owed = 0
    for tick in range(400):
        clock.advance_to(tick * FRAME_MS)
        if not runners["a"].done:
            runners["a"].tick({"p0": 1 + tick % 2})
        owed += 1
        if late_from <= tick < late_from + late_ticks:
            continue
        for _ in range(min(owed, MAX_CATCH_UP)):
            if runners["b"].done:
                break
            frame = sessions["b"].current_frame
            runners["b"].tick({"p1": (frame // 3) % 4})
            owed -= 1
        for name, session in sessions.items():
            for frame, checksum in session.confirmed_checksums().items():
                finalized[name].setdefault(frame, set()).add(checksum)
        if all(runner.done for runner in runners.values()):
            break
    return finalized, runners


@pytest.mark.parametrize("profile,seed,late_from,late_ticks", [
    ("lan", 1, FRAMES - 8, 12),
    ("lan", 2, FRAMES - 3, 20),
    ("wifi", 3, FRAMES - 6, 10),
    ("mobile", 4, FRAMES - 10, 16),
    ("bad", 5, FRAMES - 5, 8),
])
def test_every_finalized_checksum_is_the_lockstep_one(profile: str, seed: int, late_from: int, late_ticks: int) -> None:
    finalized, runners = play(profile, seed, late_from, late_ticks)
    assert all(runner.done for runner in runners.values())
    a = runners["a"].session
    inputs = [{p: a.queues[p].final_input(f) for p in ("p0", "p1")} for f in range(FRAMES)]
    expected = lockstep_checksums(inputs)
    for name, frames in finalized.items():
        for frame, checksums in frames.items():
            assert checksums == {expected[frame]}, f"peer {name} finalized frame {frame} as {checksums}"
    assert runners["a"].final_checksum() == runners["b"].final_checksum() == expected[FRAMES]


def test_a_peer_held_at_the_end_finalizes_the_end_frame_after_a_late_rollback() -> None:
    """The case the parametrized test is about: a waited at the end, was rolled back, and sent the end frame."""
    finalized, _ = play("lan", 1, FRAMES - 8, 12)
    assert FRAMES in finalized["a"]
