"""End to end: the real server in a subprocess (eventlet lives there, never in this process),
driven over Socket.IO by HeadlessParticipants through the whole flow of docs/protocol.md."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.commands.loadtest import run_loadtest
from app.participant.headless import HeadlessParticipant
from app.participant.result import ParticipantResult
from tests.server_fixtures import ROOT, Server, pid, replay_recording, run_together

SHORT_EXPERIMENT = '''
from scenes import Choice, Consent, End, Experiment, FreeText, Likert, Match, Page, Survey, WaitingRoom

EXPERIMENT = Experiment(id="e2e", scenes=[
    Consent(id="consent", markdown="Do you agree?"),
    Page(id="intro", title="Intro", markdown="Play a little Pong."),
    Survey(id="before", title="Before", questions=[
        Likert("mood", "How are you?", scale=5, labels=("bad", "good")),
        Choice("hand", "Which hand?", options=["left", "right"]),
        Choice("tools", "Which devices?", options=["mouse", "keyboard", "pad"], multiple=True),
        FreeText("note", "Anything?", max_length=20),
    ]),
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1, "max_frames": 90},
          humans=("left", "right"), episodes=2, fps=60,
          waiting_room=WaitingRoom(timeout_s=3, on_timeout="ai"), on_partner_drop="ai", fill_policy="random",
          grace_s=1),
    End(id="end", html="<p>Thanks</p>", completion_code="E2E-CODE"),
])
'''


@pytest.fixture(scope="module")
def short_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("e2e")
    experiment = folder / "experiment.py"
    experiment.write_text(SHORT_EXPERIMENT)
    server = Server(["serve", str(experiment)], folder / "data")
    yield server
    server.stop()


def checksums(result: ParticipantResult) -> dict[tuple[str, int], str]:
    return {(e["match"], e["episode"]): e["checksum"] for e in result.episodes if e["status"] == "done"}


def assert_clean(result: ParticipantResult) -> None:
    assert result.completed, result.reason
    assert result.ok and not result.errors and not result.desyncs, result.to_json()
    assert result.outcome == "completed"
    assert result.completion_code == "E2E-CODE"


# ----------------------------------------------------------------------------- the short experiment


def test_two_participants_walk_the_flow_and_agree_on_every_episode(short_server: Server) -> None:
    events: list[str] = []
    a = HeadlessParticipant(short_server.url, {"PROLIFIC_PID": pid(), "STUDY_ID": "s", "SESSION_ID": "x"}, seed=1,
                            on_event=lambda name, payload: events.append(name))
    b = HeadlessParticipant(short_server.url, {"PROLIFIC_PID": pid()}, seed=2, policy="idle")
    result_a, result_b = run_together([a, b])
    for result in (result_a, result_b):
        assert_clean(result)
        assert [s["kind"] for s in result.scenes] == ["consent", "page", "survey", "match", "end"]
        assert len(result.matches) == 1 and result.matches[0]["reason"] == "completed"
        assert [e["status"] for e in result.episodes] == ["done", "done"]
        assert result.connect_seconds is not None and result.connect_seconds < 10
        assert len(result.waiting_seconds) == 1 and len(result.first_frame_seconds) == 2
    assert result_a.matches[0]["match"] == result_b.matches[0]["match"], "they should have been paired"
    assert {m["seat"] for m in result_a.matches + result_b.matches} == {"s0", "s1"}
    assert checksums(result_a) == checksums(result_b) and len(checksums(result_a)) == 2
    assert events.count("match_start") == 2 and "match_end" in events and events[-1] == "scene"
    replayed = replay_recording(short_server, "e2e", result_a.matches[0]["match"])
    assert replayed.ok and replayed.checked >= 4 and not replayed.truncated


def test_alone_in_the_waiting_room_an_ai_fills_the_seat(short_server: Server) -> None:
    result = HeadlessParticipant(short_server.url, {"PROLIFIC_PID": pid()}, seed=3).run(60)
    assert_clean(result)
    assert result.waiting_seconds[0] >= 2.5   # the room's 3 s timeout, then an AI partner
    assert len(checksums(result)) == 2


def test_reload_resumes_the_current_scene(short_server: Server) -> None:
    on_survey = HeadlessParticipant(short_server.url, {"PROLIFIC_PID": pid()}, seed=4, reload_at_scene=2)
    on_match = HeadlessParticipant(short_server.url, {"PROLIFIC_PID": pid()}, seed=5, reload_at_scene=3)
    for result, index in zip(run_together([on_survey, on_match]), (2, 3), strict=True):
        assert_clean(result)
        assert result.reloads == 1 and result.resumed_scenes == [index]
        assert [s["index"] for s in result.scenes] == [0, 1, 2, 3, 4]   # nothing repeated or skipped


def test_a_partner_dropping_mid_match_is_held_then_replaced_by_an_ai(short_server: Server) -> None:
    leaver = HeadlessParticipant(short_server.url, {"PROLIFIC_PID": pid()}, seed=6, drop_at_frame=30)
    stayer = HeadlessParticipant(short_server.url, {"PROLIFIC_PID": pid()}, seed=7)
    gone, stayed = run_together([leaver, stayer])
    assert not gone.completed and gone.dropped and gone.reason.startswith("dropped at frame")
    assert_clean(stayed)
    assert stayed.matches[0]["match"] == gone.matches[0]["match"]
    taken = [d for d in stayed.disconnects if d["source"] == "server"]
    assert [d["status"] for d in taken] == ["absent", "replaced"]   # held for 1 s (a stand-in plays), then an AI
    assert all(d["seat"] == gone.matches[0]["seat"] and d["by"] is None for d in taken)   # the AI is not named
    assert [e["status"] for e in stayed.episodes] == ["done", "done"]
    replayed = replay_recording(short_server, "e2e", stayed.matches[0]["match"])
    assert replayed.ok and replayed.frames >= 60, replayed


def test_a_platform_id_that_finished_is_refused(short_server: Server) -> None:
    known = pid()
    assert_clean(HeadlessParticipant(short_server.url, {"PROLIFIC_PID": known}).run(60))
    again = HeadlessParticipant(short_server.url, {"PROLIFIC_PID": known}).run(20)
    assert not again.completed and again.reason.startswith("refused: HTTP 403")


def test_loadtest_command_against_the_server(short_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    command = [sys.executable, "-m", "app.cli", "loadtest", short_server.url, "--participants", "6",
               "--timeout", "90", "--json", str(out), "--progress", "0"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 started, 6 completed, 0 failed" in done.stdout
    summary: dict[str, Any] = json.loads(out.read_text())
    assert {"participants", "completed", "failed", "disconnects", "desyncs"} <= set(summary)
    assert (summary["participants"], summary["completed"], summary["failed"], summary["desyncs"]) == (6, 6, 0, 0)
    assert summary["matches"] >= 3 and summary["episodes"] == 12
    assert summary["connect_seconds"]["max"] is not None


# ----------------------------------------------------------------------------- the demo


def test_demo_flow_with_the_load_tester(tmp_path: Path) -> None:
    """`coplay demo` end to end: Pong together, the kitchen with an AI, the survey, the code."""
    server = Server(["demo"], tmp_path / "data")
    try:
        summary = run_loadtest(server.url, 2, seed=9, timeout=150)
    finally:
        server.stop()
    assert summary["failed"] == 0, summary["failures"]
    assert summary["completed"] == 2 and summary["desyncs"] == 0 and summary["errors"] == 0
    a, b = summary["results"]
    for result in (a, b):
        assert result["completion_code"] == "COPLAY-DEMO"
        assert [m["reason"] for m in result["matches"]] == ["completed", "completed"]
    assert a["matches"][0]["match"] == b["matches"][0]["match"], "both should play the Pong match together"
    pong = [{e["checksum"] for e in r["episodes"] if e["match"] == a["matches"][0]["match"]} for r in (a, b)]
    assert pong[0] == pong[1] and len(pong[0]) == 1
    matches = {m["match"] for r in (a, b) for m in r["matches"]}
    assert len(matches) == 3   # Pong together, then a kitchen match each with an AI partner
    for match in matches:
        replayed = replay_recording(server, "demo", match)
        assert replayed.ok and replayed.checked > 10, replayed


def test_this_process_never_imported_eventlet() -> None:
    assert "eventlet" not in sys.modules
