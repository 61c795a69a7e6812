"""Crash recovery: a server killed mid-match closes the match as `interrupted` when it starts again,
and its participants go on as the match scene's `on_interrupted` says."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from app.cli import main
from app.data.recording import RecordingWriter, make_header, read_recording
from app.data.store import Store, database_path
from app.live.flow import Flow
from app.live.recovery import close_interrupted_matches
from app.participant.headless import HeadlessParticipant
from scenes import Consent, End, Experiment, Likert, Match, Survey
from tests.server_fixtures import Server, pid, replay_recording, run_together

CRASH_EXPERIMENT = '''
import os
from scenes import Consent, End, Experiment, Likert, Match, Survey, WaitingRoom

EXPERIMENT = Experiment(id="crash", scenes=[
    Consent(id="consent", markdown="Agree?"),
    Survey(id="mood", title="Mood", questions=[Likert("mood", "How are you?", scale=5)]),
    Match(id="pong", game="game.games.pong:Pong",
          config={"max_score": 1000, "max_frames": int(os.environ.get("CRASH_FRAMES", "6000"))},
          humans=("left", "right"), fps=60, waiting_room=WaitingRoom(timeout_s=30, on_timeout="leave"),
          on_partner_drop="end", on_interrupted=ON_INTERRUPTED),
    Survey(id="after", title="After", questions=[Likert("fun", "Was it fun?", scale=5)]),
    End(id="end", html="<p>Thanks</p>", completion_code="CRASHED"),
])
'''
MATCH_SCENE = 2
ANSWERS = ({"mood": 2, "fun": 4}, {"mood": 5, "fun": 1})


def answer_rows(store: Store) -> set[tuple[str, str, str, object, str]]:
    return {(a["participant_id"], a["scene_id"], a["question_id"], a["value"], a["answered_at"])
            for a in store.answers()}


@pytest.mark.parametrize("on_interrupted", ["continue", "rerun"])
def test_a_match_killed_mid_play_is_interrupted_and_its_participants_go_on(
    tmp_path: Path, on_interrupted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = tmp_path / "crash.py"
    experiment.write_text(CRASH_EXPERIMENT.replace("ON_INTERRUPTED", repr(on_interrupted)))
    data = tmp_path / "data"
    platform_ids = [pid(), pid()]
    server = Server(["serve", str(experiment)], data)
    players = [HeadlessParticipant(server.url, {"PROLIFIC_PID": platform_ids[i]}, seed=i, survey_answers=ANSWERS[i])
               for i in range(2)]
    threads = [threading.Thread(target=p.run, args=(60,)) for p in players]
    for thread in threads:
        thread.start()
    recordings = data / "crash" / "recordings"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        paths = list(recordings.glob("*.jsonl"))
        if paths and read_recording(str(paths[0])).complete_frames.get(0, 0) > 90:
            break
        time.sleep(0.1)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    for thread in threads:
        thread.join()
    server.stop()
    [path] = recordings.glob("*.jsonl")
    old_match = path.stem
    killed = read_recording(str(path))
    assert not killed.ended and killed.complete_frames[0] > 90
    assert all(p.result.scenes[-1]["index"] == MATCH_SCENE for p in players)   # both were told: the match scene
    with Store(database_path(str(data), "crash")) as store:
        acknowledged = answer_rows(store)
        assert [m.status for m in store.matches()] == ["active"]
    assert {(row[1], row[3]) for row in acknowledged} == {("mood", 2), ("mood", 5)}

    restarted = Server(["serve", str(experiment)], data, env={"CRASH_FRAMES": "120"})
    try:
        with Store(database_path(str(data), "crash")) as store:
            [match] = store.matches()
            assert (match.id, match.status) == (old_match, "interrupted") and match.ended_at is not None
            participants = [store.find_by_platform_id(p) for p in platform_ids]
            assert all(p is not None and p.status == "active" for p in participants)
            expected_index = MATCH_SCENE + 1 if on_interrupted == "continue" else MATCH_SCENE
            assert [p.scene_index for p in participants if p] == [expected_index] * 2
            [event] = store.events(kind="match_interrupted")
            assert set(event["data"]["participants"].values()) == {on_interrupted}
        closed = read_recording(str(path))
        assert closed.end_reason == "interrupted" and not closed.truncated
        assert closed.events[-1]["kind"] == "match_end"
        assert closed.complete_frames[0] >= killed.complete_frames[0]
        assert main(["replay", str(path)]) == 0
        out = capsys.readouterr().out
        assert "interrupted: the server stopped while this match ran" in out and "ok: every checksum matches" in out
        assert replay_recording(restarted, "crash", old_match).checked > 5

        returning = [HeadlessParticipant(restarted.url, {"PROLIFIC_PID": platform_ids[i]}, seed=10 + i,
                                         survey_answers=ANSWERS[i]) for i in range(2)]
        results = run_together(returning, timeout=60)
        assert all(r.completed and r.completion_code == "CRASHED" for r in results), [r.reason for r in results]
        with Store(database_path(str(data), "crash")) as store:
            matches = store.matches()
            assert acknowledged <= answer_rows(store)          # nothing acknowledged before the kill is lost
            assert {(a["question_id"], a["value"]) for a in store.answers(scene_id="after")} == {("fun", 4), ("fun", 1)}
            visits = [v for v in store.scene_visits() if v["scene_id"] == "pong"]
    finally:
        restarted.stop()

    if on_interrupted == "continue":
        assert [r.scenes[0]["index"] for r in results] == [MATCH_SCENE + 1] * 2 and all(not r.matches for r in results)
        assert [m.id for m in matches] == [old_match]
        assert len(visits) == 2 and all(v["data"] == {"match": old_match, "status": "interrupted"} for v in visits)
    else:
        assert [r.scenes[0]["index"] for r in results] == [MATCH_SCENE] * 2
        [new_match] = {r.matches[0]["match"] for r in results}
        assert all(r.matches[0]["reason"] == "completed" for r in results)
        assert [(m.id, m.status) for m in matches] == [(old_match, "interrupted"), (new_match, "completed")]
        assert sorted((v["data"] or {}).get("status", "open") for v in visits) == ["interrupted"] * 2 + ["open"] * 2
        rerun = replay_recording(restarted, "crash", new_match)
        assert rerun.verdict == "ok" and not rerun.interrupted


# ----------------------------------------------------------------------------- in-process, with a real SQLite file

PARTIAL_LINE = b'{"type":"inputs","episode":0,"fra'   # the line the killed process was writing


def small_experiment(on_interrupted: str) -> Experiment:
    experiment = Experiment("small", [
        Consent("consent", markdown="Agree?"),
        Match("pong", "game.games.pong:Pong", humans=("left", "right"), on_interrupted=on_interrupted),
        Survey("after", questions=[Likert("fun", "Fun?")]),
        End("end", completion_code="DONE"),
    ])
    experiment.validate()
    return experiment


def crashed_match(tmp_path: Path, on_interrupted: str) -> tuple[Flow, str, list[str], Path]:
    """A store and recording as a server killed mid-write leaves them: match active, last line cut short."""
    store = Store(str(tmp_path / "coplay.sqlite"))
    flow = Flow(small_experiment(on_interrupted), store)
    participants = [flow.enter({"PROLIFIC_PID": f"p{i}"}).participant or "" for i in range(2)]
    for participant in participants:
        flow.advance(participant, 0, {"accept": True})
    seats = {"s0": {"players": ["left"]}, "s1": {"players": ["right"]}}
    match = store.create_match("pong", seats, 7, [(p, f"s{i}", [side]) for i, (p, side)
                                                   in enumerate(zip(participants, ("left", "right")))])
    path = tmp_path / "recordings" / f"{match}.jsonl"
    header = make_header(match=match, experiment="small", scene="pong", created_at="now", game="g.py:G",
                         game_source="", config={}, players=["left", "right"], seats=seats, netcode={}, fps=60)
    with RecordingWriter(str(path), header) as writer:
        writer.episode(0, 7)
        writer.inputs(0, 0, [0, 0])
    with open(path, "ab") as file:
        file.write(PARTIAL_LINE)
    return flow, match, participants, path


@pytest.mark.parametrize("on_interrupted", ["continue", "rerun"])
def test_recovery_closes_a_cut_short_recording_and_is_safe_to_repeat(tmp_path: Path, on_interrupted: str) -> None:
    flow, match, participants, path = crashed_match(tmp_path, on_interrupted)
    [closed] = close_interrupted_matches(flow)
    assert closed.match == match and set(closed.participants.values()) == {on_interrupted}
    recording = read_recording(str(path))
    assert not recording.truncated and recording.complete_frames == {0: 1}
    assert recording.events == [{"type": "event", "episode": 0, "frame": None, "kind": "match_end",
                                 "data": {"reason": "interrupted", "dropped_bytes": len(PARTIAL_LINE)}}]
    store = flow.store
    assert store.get_match(match).status == "interrupted"    # type: ignore[union-attr]
    index = 2 if on_interrupted == "continue" else 1
    assert all(flow.current(p)[0] == index for p in participants)
    assert close_interrupted_matches(flow) == []             # a second start changes nothing
    assert len(read_recording(str(path)).events) == 1
    store.close()


def test_recovery_of_a_match_whose_recording_never_started(tmp_path: Path) -> None:
    flow, match, participants, path = crashed_match(tmp_path, "continue")
    path.unlink()   # killed between creating the match row and writing the header
    [closed] = close_interrupted_matches(flow)
    assert flow.store.get_match(match).status == "interrupted"  # type: ignore[union-attr]
    assert all(flow.current(p)[0] == 2 for p in participants) and not path.exists()
    flow.store.close()


def test_one_participant_in_an_odd_state_does_not_stop_the_start(tmp_path: Path) -> None:
    flow, match, participants, _ = crashed_match(tmp_path, "continue")
    flow.store.leave_scene(participants[0], 1)   # no open visit of the match scene: cannot move on
    [closed] = close_interrupted_matches(flow)
    assert closed.participants == {participants[0]: "error", participants[1]: "continue"}
    assert flow.store.get_match(match).status == "interrupted"  # type: ignore[union-attr]
    flow.store.close()
