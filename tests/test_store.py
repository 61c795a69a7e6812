"""The experiment database: schema, every method, JSON round trips, threads."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.data.store import SCHEMA_VERSION, Store, database_path

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ticking_clock() -> Callable[[], datetime]:
    """A clock that moves one second each time it is read."""
    ticks = iter(range(10**9))
    return lambda: START + timedelta(seconds=next(ticks))


def stamp(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(database_path(str(tmp_path), "exp"), clock=ticking_clock()) as opened:
        yield opened


def test_schema_is_created_versioned_and_in_wal_mode(tmp_path: Path) -> None:
    path = database_path(str(tmp_path), "exp")
    assert path == str(tmp_path / "exp" / "coplay.sqlite")
    Store(path).close()  # creates the folder too
    with closing(sqlite3.connect(path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"participants", "scene_visits", "survey_answers", "matches", "match_participants", "events"}
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = str(tmp_path / "coplay.sqlite")
    with Store(path) as first:
        participant = first.create_participant("P1", {"PROLIFIC_PID": "P1"}, seed=7)
        first.log_event("connect", {"sid": "x"}, participant_id=participant)
    with Store(path) as second:
        assert second.get_participant(participant) is not None
        assert [event["kind"] for event in second.events()] == ["connect"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "coplay.sqlite")
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match=r"database schema version 99 is newer than this coplay understands \(1\); "
                                           "upgrade coplay"):
        Store(path)


def test_bad_synchronous_and_naive_clock_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous must be 'NORMAL' or 'FULL'"):
        Store(str(tmp_path / "a.sqlite"), synchronous="OFF")
    with Store(str(tmp_path / "b.sqlite"), clock=lambda: datetime(2024, 1, 1)) as naive:
        with pytest.raises(ValueError, match="timezone-aware"):
            naive.create_participant(None, {}, seed=1)


def test_participants_round_trip(store: Store) -> None:
    params = {"PROLIFIC_PID": "abc", "STUDY_ID": "s", "nested": {"list": [1, 2.5, None, True]}}
    first = store.create_participant("abc", params, seed=42)
    second = store.create_participant(None, {}, seed=43)
    third = store.create_participant(None, {}, seed=44)  # several participants without platform id
    assert len({first, second, third}) == 3 and all(len(pid) == 16 for pid in (first, second, third))
    participant = store.get_participant(first)
    assert participant is not None
    assert participant.url_params == params
    assert (participant.platform_id, participant.seed, participant.status) == ("abc", 42, "active")
    assert (participant.condition, participant.scene_index, participant.plan, participant.outcome_at) == (None, 0, [], None)
    assert participant.created_at == stamp(0)
    assert store.find_by_platform_id("abc") == participant
    assert store.find_by_platform_id("nobody") is None
    assert store.get_participant("nobody") is None
    assert [p.id for p in store.participants()] == [first, second, third]


def test_a_platform_id_belongs_to_one_participant(store: Store) -> None:
    first = store.create_participant("abc", {}, seed=1)
    with pytest.raises(ValueError, match=f"platform id 'abc' already belongs to participant {first}"):
        store.create_participant("abc", {}, seed=2)
    assert len(store.participants()) == 1


def test_plan_condition_and_status(store: Store) -> None:
    pid = store.create_participant(None, {}, seed=1)
    store.set_plan(pid, ["consent", "match", "survey", "end"])
    store.assign_condition(pid, "partner", "ai")
    store.assign_condition(pid, "speed", "fast")
    participant = store.get_participant(pid)
    assert participant is not None
    assert participant.plan == ["consent", "match", "survey", "end"]
    assert participant.condition == {"partner": "ai", "speed": "fast"}
    with pytest.raises(ValueError, match="plan must be a list of scene ids"):
        store.set_plan(pid, ["a", 1])  # type: ignore[list-item]
    with pytest.raises(KeyError, match="no participant 'ghost'"):
        store.set_plan("ghost", [])
    with pytest.raises(KeyError, match="no participant 'ghost'"):
        store.assign_condition("ghost", "partner", "ai")

    store.set_status(pid, "completed")
    participant = store.get_participant(pid)
    assert participant is not None and participant.status == "completed"
    assert participant.outcome_at is not None
    assert [p.id for p in store.participants(status="completed")] == [pid]
    with pytest.raises(ValueError, match="status must be one of"):
        store.set_status(pid, "finished")
    with pytest.raises(KeyError, match="no participant 'ghost'"):
        store.set_status("ghost", "error")


def test_arm_counts_count_active_and_completed_only(store: Store) -> None:
    arms = ["ai", "human", "ai", "ai", "human", None]
    statuses = ["active", "completed", "completed", "excluded", "partner_dropped", "active"]
    for arm, status in zip(arms, statuses):
        pid = store.create_participant(None, {}, seed=0)
        if arm is not None:
            store.assign_condition(pid, "partner", arm)
        store.assign_condition(pid, "other name", "x")
        store.set_status(pid, status)
    assert store.arm_counts("partner") == {"ai": 2, "human": 1}
    assert store.arm_counts("partner", arms=["ai", "human", "none"]) == {"ai": 2, "human": 1, "none": 0}
    assert store.arm_counts("other name") == {"x": 4}
    assert store.arm_counts("unknown", arms=["a"]) == {"a": 0}


def test_scene_visits(store: Store) -> None:
    pid = store.create_participant(None, {}, seed=0)
    store.enter_scene(pid, 0, "consent", "consent")
    store.enter_scene(pid, 0, "consent", "consent")  # a reconnect: nothing new
    with pytest.raises(ValueError, match="still in scene 0; leave it before entering scene 1"):
        store.enter_scene(pid, 1, "intro", "page")
    store.advance_scene(pid, 0, {"accept": True}, 1, "intro", "page")
    store.leave_scene(pid, 1)
    with pytest.raises(ValueError, match="has no open visit of scene 1"):
        store.leave_scene(pid, 1)
    store.enter_scene(pid, 2, "survey", "survey")
    with pytest.raises(KeyError, match="no participant 'ghost'"):
        store.enter_scene("ghost", 0, "consent", "consent")

    visits = store.scene_visits(pid)
    assert [(v["scene_index"], v["scene_id"], v["kind"], v["data"]) for v in visits] == [
        (0, "consent", "consent", {"accept": True}), (1, "intro", "page", None), (2, "survey", "survey", None)]
    assert visits[0]["left_at"] is not None and visits[2]["left_at"] is None
    assert visits[0]["entered_at"] < visits[0]["left_at"] <= visits[1]["entered_at"]
    participant = store.get_participant(pid)
    assert participant is not None and participant.scene_index == 2
    assert store.scene_visits() == visits


def test_advance_scene_is_all_or_nothing(store: Store) -> None:
    pid = store.create_participant(None, {}, seed=0)
    store.enter_scene(pid, 0, "consent", "consent")
    with pytest.raises(ValueError, match="has no open visit of scene 5"):
        store.advance_scene(pid, 5, {}, 6, "x", "page")
    with pytest.raises(ValueError, match="must be JSON-able"):
        store.advance_scene(pid, 0, {"bad": {1, 2}}, 1, "intro", "page")
    [visit] = store.scene_visits(pid)
    assert visit["left_at"] is None


def test_survey_answers(store: Store) -> None:
    pid = store.create_participant(None, {}, seed=0)
    other = store.create_participant(None, {}, seed=0)
    store.save_answers(pid, "survey1", {"q1": 5, "q2": ["a", "b"], "q3": "free text, ünïcode", "q4": None})
    store.save_answers(pid, "survey1", {"q1": 6})  # answering again replaces the value
    store.save_answers(other, "survey1", {"q1": 1.5})
    store.save_answers(pid, "survey2", {"q1": True})
    mine = {(a["scene_id"], a["question_id"]): a["value"] for a in store.answers(participant_id=pid)}
    assert mine == {("survey1", "q1"): 6, ("survey1", "q2"): ["a", "b"], ("survey1", "q3"): "free text, ünïcode",
                    ("survey1", "q4"): None, ("survey2", "q1"): True}
    assert [a["value"] for a in store.answers(scene_id="survey1", participant_id=other)] == [1.5]
    assert len(store.answers()) == 6
    with pytest.raises(ValueError, match="answer to 'q1' must be JSON-able"):
        store.save_answers(pid, "survey3", {"q0": 1, "q1": float("nan")})
    assert store.answers(scene_id="survey3") == []  # nothing of a refused batch is kept


def test_matches(store: Store) -> None:
    alice = store.create_participant(None, {}, seed=0)
    bob = store.create_participant(None, {}, seed=0)
    seats = {"s0": {"players": ["left"], "kind": "human", "participant": alice, "policy": None},
             "s1": {"players": ["right"], "kind": "ai", "participant": None, "policy": "bots.py:Tracker"}}
    match_id = store.create_match("match1", seats, seed=99, participants=[(alice, "s0", ["left"])])
    match = store.get_match(match_id)
    assert match is not None
    assert (match.scene_id, match.status, match.seats, match.seed, match.ended_at) == ("match1", "active", seats, 99, None)
    assert match.recording == f"recordings/{match_id}.jsonl"
    store.add_match_participant(match_id, bob, "s1", ["right"])  # a human takes over the AI's seat
    assert [(r["participant_id"], r["seat"], r["players"]) for r in store.match_participants(match_id)] == [
        (alice, "s0", ["left"]), (bob, "s1", ["right"])]
    assert [r["match_id"] for r in store.match_participants(participant_id=bob)] == [match_id]

    with pytest.raises(ValueError, match="status must be one of"):
        store.end_match(match_id, "active")
    store.end_match(match_id, "partner_dropped")
    ended = store.get_match(match_id)
    assert ended is not None and ended.status == "partner_dropped" and ended.ended_at is not None
    with pytest.raises(ValueError, match=f"match {match_id} already ended \\(partner_dropped\\)"):
        store.end_match(match_id, "completed")
    with pytest.raises(KeyError, match="no match 'ghost'"):
        store.end_match("ghost", "completed")

    custom = store.create_match("match2", {}, seed=1, match_id="m-2", recording="elsewhere/m-2.jsonl")
    assert custom == "m-2"
    assert [m.id for m in store.matches()] == [match_id, "m-2"]
    assert [m.id for m in store.matches(status="active")] == ["m-2"]
    store.end_match("m-2", "interrupted")   # its server died; closed at the next start
    assert [m.id for m in store.matches(status="interrupted")] == ["m-2"] and store.matches(status="active") == []
    assert store.get_match("ghost") is None


def test_match_participants_must_exist(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.create_match("match1", {}, seed=1, participants=[("ghost", "s0", ["left"])])
    assert store.matches() == []  # the match row went with the refused seat


def test_events(store: Store) -> None:
    pid = store.create_participant(None, {}, seed=0)
    first = store.log_event("connect", {"sid": "a"}, participant_id=pid)
    second = store.log_event("desync", {"frame": 16, "checksums": {"s0": "ab", "s1": "cd"}}, match_id="m1")
    third = store.log_event("server_start")
    assert first < second < third
    everything = store.events()
    assert [e["kind"] for e in everything] == ["connect", "desync", "server_start"]
    assert everything[2]["data"] == {} and everything[2]["participant_id"] is None
    assert everything[0]["at"] == stamp(1)  # the clock's second reading (the first stamped the participant)
    assert store.events(kind="desync")[0]["data"] == {"frame": 16, "checksums": {"s0": "ab", "s1": "cd"}}
    assert [e["id"] for e in store.events(participant_id=pid)] == [first]
    assert [e["id"] for e in store.events(match_id="m1", kind="desync")] == [second]
    with pytest.raises(ValueError, match="event data must be JSON-able"):
        store.log_event("bad", {"x": object()})


def test_threads_share_one_store(store: Store) -> None:
    def work(worker: int) -> None:
        for i in range(50):
            store.log_event("tick", {"worker": worker, "i": i})
            store.create_participant(f"{worker}-{i}", {}, seed=i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.events(kind="tick")) == 400
    assert len(store.participants()) == 400


def test_lock_makes_count_then_assign_atomic(store: Store) -> None:
    """The pattern the server uses for balanced assignment."""
    def arrive() -> None:
        pid = store.create_participant(None, {}, seed=0)
        with store.lock:
            counts = store.arm_counts("partner", arms=["ai", "human"])
            store.assign_condition(pid, "partner", min(counts, key=lambda arm: (counts[arm], arm)))

    threads = [threading.Thread(target=arrive) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.arm_counts("partner") == {"ai": 20, "human": 20}


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "coplay.sqlite"))
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.log_event("late")
