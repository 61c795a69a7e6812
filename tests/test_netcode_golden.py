"""Golden request sequences: the exact batches a session asks its caller to run."""
from __future__ import annotations

from netcode.runner import SessionRunner
from netcode.synctest import SyncTestSession
from tests.netcode_fixtures import Pair, tally_config
from tests.tally import Tally


def save(frame: int, checksum: bool = False) -> dict:
    return {"op": "save", "frame": frame, "checksum": checksum}


def load(frame: int) -> dict:
    return {"op": "load", "frame": frame}


def advance(frame: int, p0: int, p1: int, s0: str = "confirmed", s1: str = "confirmed") -> dict:
    return {"op": "advance", "frame": frame, "inputs": {"p0": p0, "p1": p1}, "status": {"p0": s0, "p1": s1}}


def test_first_frames_predict_the_default_action_and_save_each_frame() -> None:
    pair = Pair()
    assert pair.tick("a", 1) == [save(0, True), advance(0, 1, 0, s1="predicted")]
    assert pair.tick("a", 1) == [save(1), advance(1, 1, 0, s1="predicted")]


def test_rollback_of_depth_3_is_one_batch() -> None:
    pair = Pair()
    for _ in range(3):
        pair.tick("a", 1)
    for _ in range(3):
        pair.tick("b", 2)
    # a predicted p1 = 0 for frames 0-2; the real input was 2, so frame 0 is reloaded and
    # frames 0-2 re-run with confirmed inputs (no saves: they can never be rolled back again).
    assert pair.tick("a", 1) == [
        load(0), advance(0, 1, 2), advance(1, 1, 2), advance(2, 1, 2),
        save(3), advance(3, 1, 2, s1="predicted"),
    ]
    assert pair.a.stats.rollbacks == 1 and pair.a.stats.max_rollback_depth == 3


def test_correct_prediction_needs_no_rollback() -> None:
    pair = Pair()
    for _ in range(3):
        pair.tick("a", 1)
    for _ in range(3):
        pair.tick("b", 0)
    assert pair.tick("a", 1) == [save(3), advance(3, 1, 0, s1="predicted")]
    assert pair.a.stats.rollbacks == 0


def test_rollback_starts_at_the_first_wrong_frame() -> None:
    pair = Pair()
    for _ in range(4):
        pair.tick("a", 1)
    pair.tick("b", 0)
    pair.tick("b", 3)
    # frame 0 was predicted right (0), frame 1 wrong (3); frames 2-3 repeat the last input 3.
    assert pair.tick("a", 1) == [
        load(1), advance(1, 1, 3), save(2), advance(2, 1, 3, s1="predicted"), save(3),
        advance(3, 1, 3, s1="predicted"), save(4), advance(4, 1, 3, s1="predicted"),
    ]


def test_stall_at_the_prediction_window() -> None:
    pair = Pair(max_prediction=2)
    assert pair.tick("a", 1) == [save(0, True), advance(0, 1, 0, s1="predicted")]
    assert pair.tick("a", 1) == [save(1), advance(1, 1, 0, s1="predicted")]
    assert pair.tick("a", 1) == []
    assert pair.a.stalled and pair.a.stats.stalls == 1 and pair.a.current_frame == 2
    pair.tick("b", 0)
    assert pair.tick("a", 1) == [save(2), advance(2, 1, 0, s1="predicted")]
    assert not pair.a.stalled


def test_lockstep_is_max_prediction_zero() -> None:
    pair = Pair(max_prediction=0)
    assert pair.tick("a", 1) == []
    assert pair.a.stalled
    assert pair.tick("b", 2) == [save(0, True), advance(0, 1, 2)]
    assert pair.tick("a", 1) == [save(0, True), advance(0, 1, 2)]


def test_input_delay_fills_the_first_frames_with_the_default_action() -> None:
    pair = Pair(input_delay=2)
    assert pair.tick("a", 3) == [save(0, True), advance(0, 0, 0, s1="predicted")]
    assert pair.tick("a", 3) == [save(1), advance(1, 0, 0, s1="predicted")]
    assert pair.tick("a", 3) == [save(2), advance(2, 3, 0, s1="predicted")]


def test_synctest_rolls_back_check_distance_frames_every_tick() -> None:
    config = tally_config(2)
    session = SyncTestSession(config, check_distance=2)
    seen: list[list[dict]] = []
    runner = SessionRunner(session, _reset(Tally()), on_requests=lambda r: seen.append([x.to_json() for x in r]))
    for action in (1, 2, 3):
        runner.tick({"p0": action, "p1": 0})
    assert seen == [
        [save(0, True), advance(0, 1, 0)],
        [save(1, True), advance(1, 2, 0), load(0), advance(0, 1, 0), save(1, True), advance(1, 2, 0), save(2, True)],
        [save(2, True), advance(2, 3, 0), load(1), advance(1, 2, 0), save(2, True), advance(2, 3, 0), save(3, True)],
    ]
    assert session.events() == []


def _reset(env: Tally) -> Tally:
    env.reset(0)
    return env
