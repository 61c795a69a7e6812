"""The server under bad input, dropped partners and a hard kill."""
from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import socketio
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.participant.headless import HeadlessParticipant
from app.data.recording import read_recording
from tests.server_fixtures import Server, pid, replay_recording, run_together

ROBUST_EXPERIMENT = '''
from scenes import Consent, End, Experiment, Match, Survey, Likert, WaitingRoom

EXPERIMENT = Experiment(id="robust", scenes=[
    Consent(id="consent", markdown="Agree?"),
    Survey(id="mood", title="Mood", questions=[Likert("mood", "How are you?", scale=5)]),
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1000, "max_frames": FRAMES},
          humans=("left", "right"), fps=60, waiting_room=WaitingRoom(timeout_s=30, on_timeout="leave"),
          on_partner_drop="end", grace_s=0),
    End(id="end", html="<p>Thanks</p>", completion_code="ROBUST"),
])
'''


def start(tmp_path: Path, frames: int) -> Server:
    experiment = tmp_path / "robust.py"
    experiment.write_text(ROBUST_EXPERIMENT.replace("FRAMES", str(frames)))
    return Server(["serve", str(experiment)], tmp_path / "data")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(tmp_path_factory.mktemp("robust"), frames=120)
    yield running
    running.stop()


def test_a_partner_dropping_ends_the_match_cleanly_when_the_scene_says_so(server: Server) -> None:
    leaver = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=1, drop_at_frame=40)
    stayer = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=2)
    gone, stayed = run_together([leaver, stayer])
    assert gone.dropped and stayed.completed and stayed.completion_code == "ROBUST"
    assert stayed.matches[0]["reason"] == "partner_dropped"
    match = stayed.matches[0]["match"]
    recording = read_recording(str(server.data_dir / "robust" / "recordings" / f"{match}.jsonl"))
    kinds = [e["kind"] for e in recording.events]
    assert kinds == ["seat_changed", "match_end"] and recording.events[0]["data"]["by"] == "gone"
    assert recording.complete_frames[0] >= 30
    assert replay_recording(server, "robust", match).ok


# ----------------------------------------------------------------------------- malformed events


class RawClient:
    """A participant's Socket.IO connection without the headless machinery: send anything."""

    def __init__(self, url: str, cookie: str | None = None) -> None:
        if cookie is None:
            with requests.Session() as http:
                assert http.get(url + "/", params={"PROLIFIC_PID": pid()}, timeout=10).status_code == 200
                cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        self.cookie = cookie
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", lambda event, data=None: self.inbox.put((event, data)))
        self.sio.connect(url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=10)
        self.scene = self.next("scene")

    def next(self, event: str, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            name, data = self.inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            if name == event:
                return data


@pytest.fixture(scope="module")
def raw(server: Server) -> Iterator[RawClient]:
    client = RawClient(server.url)
    assert client.scene["index"] == 0
    yield client
    client.sio.disconnect()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
payloads = st.one_of(
    json_values,
    st.fixed_dictionaries({"index": json_values, "data": json_values}),
    st.fixed_dictionaries({"match": json_values, "episode": json_values, "to": json_values, "data": json_values}),
    st.fixed_dictionaries({"index": st.integers(-5, 5), "data": st.dictionaries(st.text(max_size=8), json_values)}),
)
events = st.sampled_from(["advance", "ready", "packet", "episode_done", "client_error", "hello", "scene",
                          "match_start", "x" * 200])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=events, payload=payloads)
def test_malformed_events_get_an_error_and_change_nothing(raw: RawClient, event: str, payload: Any) -> None:
    assume(not (event == "advance" and isinstance(payload, dict) and payload.get("index") == 0
                and isinstance(payload.get("data"), dict) and "accept" in payload["data"]))
    assume(not (event == "client_error" and isinstance(payload, dict) and set(payload) <= {"message", "traceback"}
                and isinstance(payload.get("message"), str) and payload["message"]
                and isinstance(payload.get("traceback", ""), str)))
    raw.sio.emit(event, payload)
    error = raw.next("error")
    assert error["event"] == event and isinstance(error["reason"], str) and error["reason"]


def test_after_the_barrage_the_participant_is_where_it_was_and_others_are_served(
    raw: RawClient, server: Server,
) -> None:
    raw.sio.emit("advance", {"index": 1, "data": {}})
    assert raw.next("error")["reason"] == "scene 1 is not your current scene (0)"
    raw.sio.emit("advance", {"index": 0, "data": {"accept": True}})
    assert raw.next("scene")["index"] == 1
    raw.sio.emit("advance", {"index": 1, "data": {"answers": {"mood": 9}}})
    assert "expected a whole number from 1 to 5, got 9" in raw.next("error")["reason"]
    pair = run_together([HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=s) for s in (3, 4)])
    assert all(result.completed and not result.errors for result in pair)


def test_a_client_error_is_logged_with_the_participant(raw: RawClient, server: Server) -> None:
    raw.sio.emit("client_error", {"message": "the game raised ZeroDivisionError", "traceback": "line 3"})
    deadline = time.monotonic() + 10
    while "the game raised ZeroDivisionError" not in server.log_path.read_text():
        assert time.monotonic() < deadline, server.log_path.read_text()[-2000:]
        time.sleep(0.1)


def test_declining_consent_ends_the_study_with_the_declined_page(server: Server) -> None:
    client = RawClient(server.url)
    try:
        client.sio.emit("advance", {"index": 0, "data": {"accept": False}})
        scene = client.next("scene")
        assert scene["scene"]["kind"] == "end" and scene["scene"]["outcome"] == "declined"
        client.sio.emit("advance", {"index": 0, "data": {"accept": True}})
        assert client.next("error")["reason"] == "the study has ended for you (declined)"
    finally:
        client.sio.disconnect()


def test_a_second_tab_during_a_match_gives_up_the_seat_at_once(server: Server) -> None:
    first = RawClient(server.url)
    first.sio.emit("advance", {"index": 0, "data": {"accept": True}})
    first.next("scene")
    first.sio.emit("advance", {"index": 1, "data": {"answers": {"mood": 3}}})
    assert first.next("scene")["scene"]["kind"] == "match"
    partner = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=8)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(partner.run(60)))
    thread.start()
    try:
        first.sio.emit("ready", {"index": 2})
        first.next("match_start")
        second = RawClient(server.url, cookie=first.cookie)   # the same participant opens a second tab
        assert second.scene["index"] == 3 and second.scene["scene"]["kind"] == "end"
        thread.join()
        assert result[0].completed, result[0].reason
        assert result[0].matches[0]["reason"] == "partner_dropped"   # this scene ends the match on a drop
        second.sio.disconnect()
    finally:
        first.sio.disconnect()
        thread.join()


def test_an_event_flood_is_rate_limited(raw: RawClient) -> None:
    for _ in range(1500):
        raw.sio.emit("ready", {"index": 99})
    reasons = []
    while True:
        try:
            reasons.append(raw.next("error", timeout=3)["reason"])
        except queue.Empty:
            break
    assert any(r.startswith("too many events") for r in reasons)


# ----------------------------------------------------------------------------- a hard kill


def test_killing_the_server_mid_match_loses_nothing_acknowledged(tmp_path: Path) -> None:
    server = start(tmp_path, frames=6000)
    players = [HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=s) for s in (5, 6)]
    seen_scenes: list[list[int]] = [[], []]
    for index, participant in enumerate(players):
        participant.on_event = lambda name, data, i=index: seen_scenes[i].append(data["index"]) if name == "scene" else None
    threads = [threading.Thread(target=p.run, args=(60,)) for p in players]
    for thread in threads:
        thread.start()
    recordings = server.data_dir / "robust" / "recordings"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(recordings.glob("*.jsonl")):
        time.sleep(0.1)
    time.sleep(3)  # about 180 frames into the match
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    for thread in threads:
        thread.join()
    server.stop()

    [path] = recordings.glob("*.jsonl")
    recording = read_recording(str(path))
    assert recording.complete_frames[0] > 60 and not recording.ended
    replayed = replay_recording(server, "robust", path.stem)
    assert replayed.ok and replayed.checked > 5, replayed

    database = sqlite3.connect(server.data_dir / "robust" / "coplay.sqlite")
    try:
        rows = database.execute("SELECT id, scene_index FROM participants").fetchall()
        answers = database.execute("SELECT value FROM survey_answers").fetchall()
        match = database.execute("SELECT status FROM matches").fetchall()
    finally:
        database.close()
    assert sorted(index for _, index in rows) == [2, 2]          # both were told they are in the match scene
    assert all(2 in scenes for scenes in seen_scenes)
    assert len(answers) == 2 and all(1 <= json.loads(v) <= 5 for (v,) in answers)
    assert match == [("active",)]                                # it never ended: the server died
