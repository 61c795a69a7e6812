"""Rejoin the same match: a participant who vanishes mid-match keeps their seat for the scene's grace
period while a stand-in plays it, comes back (reconnect or reload, same session) and plays on in the
same match. The real server in a subprocess, driven by HeadlessParticipants (tests/test_browser_rejoin.py
does the same with real Chromium pages)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.analysis.export import export
from app.data.recording import read_recording
from app.participant.headless import HeadlessParticipant
from app.participant.result import ParticipantResult
from tests.server_fixtures import Server, pid, replay_recording, run_together

EXPERIMENT = '''
from scenes import Consent, End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="rejoin", scenes=[
    Consent(id="consent", markdown="Do you agree?"),
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1000, "max_frames": 420},
          humans=("left", "right"), fps=60, waiting_room=WaitingRoom(timeout_s=30, on_timeout="leave"),
          on_partner_drop="ai", grace_s=GRACE),
    End(id="end", html="<p>Thanks</p>", completion_code="BACK"),
])
'''


def start(folder: Path, grace_s: float) -> Server:
    experiment = folder / "rejoin.py"
    experiment.write_text(EXPERIMENT.replace("GRACE", str(grace_s)))
    return Server(["serve", str(experiment)], folder / "data")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(tmp_path_factory.mktemp("rejoin"), grace_s=15)
    yield running
    running.stop()


def seat_events(server: Server, match: str) -> list[dict[str, Any]]:
    path = server.data_dir / "rejoin" / "recordings" / f"{match}.jsonl"
    return [{"frame": e["frame"], **e["data"]} for e in read_recording(str(path)).events if e["kind"] == "seat_changed"]


def play_with_a_gap(server: Server, away_s: float) -> tuple[ParticipantResult, ParticipantResult]:
    leaver = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=1, rejoin_at_frame=90,
                                 rejoin_after_s=away_s)
    stayer = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=2)
    back, stayed = run_together([leaver, stayer], timeout=90)
    for result in (back, stayed):
        assert result.completed and result.outcome == "completed", result.reason
        assert not result.desyncs and not result.errors, result.to_json()
        assert [m["reason"] for m in result.matches] == ["completed"]   # one match, not abandoned
    assert back.matches[0]["match"] == stayed.matches[0]["match"]
    return back, stayed


@pytest.mark.parametrize("away_s", [2.0, 0.2], ids=["blip", "reload"])
def test_a_participant_who_vanishes_takes_their_seat_back(server: Server, away_s: float, tmp_path: Path) -> None:
    back, stayed = play_with_a_gap(server, away_s)
    [frame] = back.rejoins
    assert frame is not None and frame >= 90
    assert [e["status"] for e in back.episodes] == ["unfinished (vanished)", "done"]
    told = [d for d in stayed.disconnects if d["source"] == "server"]
    assert [d["status"] for d in told] == ["absent", "back"] and all(d["by"] is None for d in told)
    assert [e["status"] for e in stayed.episodes] == ["done"]

    match, seat = back.matches[0]["match"], back.matches[0]["seat"]
    events = seat_events(server, match)
    assert [(e["seat"], e["by"]) for e in events] == [(seat, "stand_in"), (seat, "participant")]
    absent_from, back_from = events[0]["frame"], events[1]["frame"]
    assert 80 <= absent_from < back_from == frame   # the stand-in played [absent_from, back_from)
    assert [e["gen"] for e in events] == [1, 2] and events[0]["policy"] == "idle"
    replayed = replay_recording(server, "rejoin", match)
    assert replayed.ok and replayed.frames == 420, replayed

    [result] = export(str(server.data_dir / "rejoin"), "csv", str(tmp_path / "out"))
    with open(result.out_dir + "/steps.csv", newline="", encoding="utf-8") as file:
        rows = [r for r in csv.DictReader(file) if r["match"] == match and r["seat"] == seat]
    kinds = {int(r["frame"]): (r["seat_kind"], r["participant"]) for r in rows}
    participant = kinds[0][1]
    assert participant and kinds[absent_from - 1] == ("human", participant)
    assert {kinds[f] for f in range(absent_from, back_from)} == {("stand_in", participant)}
    assert kinds[back_from] == ("human", participant) and kinds[419] == ("human", participant)


def test_after_the_grace_period_the_seat_goes_to_an_ai_unnamed(tmp_path: Path) -> None:
    server = start(tmp_path, grace_s=1)
    try:
        late = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=3, rejoin_at_frame=60, rejoin_after_s=3)
        stayer = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=4)
        came_late, stayed = run_together([late, stayer], timeout=90)
        assert stayed.completed and [m["reason"] for m in stayed.matches] == ["completed"], stayed.reason
        told = [d for d in stayed.disconnects if d["source"] == "server"]
        assert [d["status"] for d in told] == ["absent", "replaced"] and all(d["by"] is None for d in told)
        assert came_late.completed and came_late.rejoins == [], came_late.reason   # sent on past the match
        assert [(m["reason"], m["message"]) for m in came_late.matches] == [
            ("away", "You were away too long, so the game went on without you.")]   # and told why
        events = seat_events(server, stayed.matches[0]["match"])
        assert [(e["by"], e["why"]) for e in events] == [("stand_in", "disconnected"), ("ai", "grace_expired")]
        assert replay_recording(server, "rejoin", stayed.matches[0]["match"]).ok
    finally:
        server.stop()


def test_a_page_silent_past_the_grace_period_is_told_and_sent_on(tmp_path: Path) -> None:
    """The socket stays open but nothing comes from it: the seat is held, then given to an AI, and the
    page hears why (match_end "away") and goes on."""
    server = start(tmp_path, grace_s=1)
    try:
        frozen = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=5)
        stayer = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=6)
        original = frozen._service_episode

        def freeze_at_frame_60(ep: Any, now: float) -> None:
            if ep.client.session.current_frame < 60:
                original(ep, now)

        frozen._service_episode = freeze_at_frame_60   # type: ignore[method-assign]
        silent, stayed = run_together([frozen, stayer], timeout=90)
        assert stayed.completed and [m["reason"] for m in stayed.matches] == ["completed"], stayed.reason
        assert silent.completed and [m["reason"] for m in silent.matches] == ["away"], silent.reason
        events = seat_events(server, stayed.matches[0]["match"])
        assert [(e["by"], e["why"]) for e in events] == [("stand_in", "silent"), ("ai", "grace_expired")]
    finally:
        server.stop()
