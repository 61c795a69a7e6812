"""Whole matches over the simulated network: convergence, invariants, desyncs, disconnects."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netcode.p2p import P2PSession
from netcode.requests import PREDICTED, AdvanceFrame, LoadState, Request, SaveState
from netcode.sim import PROFILES
from netcode.simmatch import run_sim_match
from tests.tally import CorruptedTally, Tally


class InvariantChecker:
    """Watches every batch of every peer: loads only saved frames, never predicts past the window."""

    def __init__(self) -> None:
        self.saved: dict[int, set[int]] = {}
        self.loads = 0
        self.predicted_frames = 0

    def __call__(self, peer: int, session: P2PSession, requests: list[Request]) -> None:
        saved = self.saved.setdefault(peer, set())
        window = session.config.max_prediction
        for request in requests:
            if isinstance(request, SaveState):
                saved.add(request.frame)
            elif isinstance(request, LoadState):
                self.loads += 1
                assert request.frame in saved, f"peer {peer} loads frame {request.frame}, never saved"
            elif isinstance(request, AdvanceFrame) and PREDICTED in request.status.values():
                self.predicted_frames += 1
                assert request.frame - session.confirmed_frame <= window, (
                    f"peer {peer} predicts frame {request.frame} with confirmed frame {session.confirmed_frame}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    peers=st.integers(2, 4),
    profile=st.sampled_from(sorted(PROFILES)),
    delay=st.integers(0, 3),
    max_prediction=st.sampled_from([0, 1, 4, 8]),
)
def test_every_peer_converges_to_lockstep(seed: int, peers: int, profile: str, delay: int, max_prediction: int) -> None:
    checker = InvariantChecker()
    report = run_sim_match(
        lambda _: Tally({"players": peers}), peers=peers, profile=profile, frames=240, seed=seed,
        settings={"input_delay": delay, "max_prediction": max_prediction}, on_requests=checker,
    )
    assert report.converged, report.reason
    assert report.desyncs == 0 and report.bad_packets == 0
    assert report.checked_frames >= peers * 20
    if max_prediction == 0:
        assert report.rollbacks == 0 and checker.predicted_frames == 0


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_rollbacks_happen_and_stay_within_the_window(profile: str) -> None:
    checker = InvariantChecker()
    report = run_sim_match(lambda _: Tally({"players": 3}), peers=3, profile=profile, frames=600, seed=7,
                           on_requests=checker)
    assert report.converged, report.reason
    assert report.rollbacks > 0 and checker.loads == report.rollbacks
    assert 1 <= report.max_rollback_depth <= 8


def test_healthy_peers_never_report_a_desync_on_the_worst_profile() -> None:
    for seed in range(5):
        report = run_sim_match(lambda _: Tally({"players": 2}), profile="bad", frames=900, seed=seed,
                               settings={"desync_interval": 1})
        assert report.converged and report.desyncs == 0, report.reason
        assert report.checked_frames > 1000


def test_desync_fires_exactly_on_the_corrupted_peer() -> None:
    def make_env(peer: int) -> Any:
        return CorruptedTally({"players": 3}, at_frame=200) if peer == 2 else Tally({"players": 3})

    report = run_sim_match(make_env, peers=3, profile="wifi", frames=400, seed=5)
    assert not report.converged
    events = report.desync_events
    assert {frozenset((e["reporter"], e["peer"])) for e in events} == {
        frozenset(("peer0", "peer2")), frozenset(("peer1", "peer2"))}
    assert min(e["frame"] for e in events) == 210  # state 201 is the first bad one; checks every 10 frames
    assert all(e["remote_checksum"] != e["local_checksum"] for e in events)


def test_a_vanished_peer_is_disconnected_and_the_others_carry_on() -> None:
    report = run_sim_match(lambda _: Tally({"players": 3}), peers=3, profile="wifi", frames=600, seed=2,
                           drop={1: 150})
    assert report.converged, report.reason
    assert report.disconnects == 2  # each survivor reports the vanished peer once


def test_lockstep_never_rolls_back() -> None:
    report = run_sim_match(lambda _: Tally(), profile="mobile", frames=300, seed=1, settings={"max_prediction": 0})
    assert report.converged and report.rollbacks == 0 and report.stalls > 0


def test_same_seed_same_run() -> None:
    first = run_sim_match(lambda _: Tally({"players": 2}), profile="bad", frames=300, seed=11)
    second = run_sim_match(lambda _: Tally({"players": 2}), profile="bad", frames=300, seed=11)
    assert first == second


class EndingTally(Tally):
    """A Tally whose episode ends when p0's counter reaches 3 (so the end depends on inputs) and which,
    like a PettingZoo env whose agents are gone, raises when stepped past its end."""

    def step(self, actions: dict[str, Any]) -> dict[str, Any]:
        if self.pos[0] >= 3:
            raise KeyError("p0")
        result = super().step(actions)
        result["terminated"] = self.pos[0] >= 3
        return result


@pytest.mark.parametrize("profile", ["wifi", "bad"])
@pytest.mark.parametrize("peers", [1, 2])
def test_episodes_end_and_restart_without_stepping_past_the_end(profile: str, peers: int) -> None:
    """Issue 13: simulate used to step past an episode's end (KeyError) and refused 1-player games. A
    rollback that reveals an earlier end re-simulates frames after it: the game is not stepped there."""
    report = run_sim_match(lambda _: EndingTally({"players": 2}), peers=peers, profile=profile, frames=400, seed=4)
    assert report.converged, report.reason
    assert report.frames == 400 and report.episodes >= 3
