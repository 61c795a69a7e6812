"""The researcher's dashboard (/admin) against the real server (eventlet, loopback) with real headless
participants: access control of every route and of the /admin Socket.IO namespace, live snapshots,
pausing entries (also across a restart), ending a match and a participant's study (both recorded, the
participants told), the export download, and the token kept out of logs and the database."""
from __future__ import annotations

import io
import sqlite3
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
import socketio

from app.participant.headless import HeadlessParticipant
from app.participant.result import ParticipantResult
from tests.server_fixtures import Server, pid

EXPERIMENT = '''
from scenes import Consent, End, Experiment, Match, Outcome, WaitingRoom

EXPERIMENT = Experiment(id="dash", scenes=[
    Consent(id="consent", markdown="Agree?"),
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 100000, "max_frames": 100000},
          humans=("left", "right"), episodes=1, fps=60,
          waiting_room=WaitingRoom(timeout_s=300, on_timeout="leave"), on_partner_drop="ai", fill_policy="random"),
    End(id="end", html="<p>Thanks</p>", completion_code="DASH-DONE"),
], outcomes={"excluded": Outcome(title="Excluded", html="<p>EXCLUDED-PAGE</p>", completion_code="DASH-EXCL")},
   entry_paused_message="PAUSED-PAGE: come back tomorrow.")
'''
JSON_HEADERS = {"X-Coplay-Admin": "1"}


class Study:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = self.start()
        self.token = (folder / "data" / "dash" / "admin_token").read_text().strip()

    def start(self) -> Server:
        return Server(["serve", str(self.folder / "experiment.py")], self.folder / "data", env={"COPLAY_ADMIN_TOKEN": ""})

    def restart(self) -> None:
        self.server.stop()
        self.logs = getattr(self, "logs", "") + self.server.log_path.read_text()
        self.server = self.start()

    @property
    def url(self) -> str:
        return self.server.url

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def snapshot(self) -> dict[str, Any]:
        response = requests.get(self.url + "/admin/snapshot.json", headers=self.bearer(), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(self.url + path, json=body, headers=headers if headers is not None else
                             {**self.bearer(), **JSON_HEADERS}, timeout=30)

    def wait_for(self, predicate: Callable[[dict[str, Any]], Any], what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(self.snapshot())
            if found:
                return found
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last snapshot: {self.snapshot()}")

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.folder / "data" / "dash" / "coplay.sqlite")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Study]:
    folder = tmp_path_factory.mktemp("dashboard")
    (folder / "experiment.py").write_text(EXPERIMENT)
    running = Study(folder)
    yield running
    running.server.stop()


class Playing:
    """A headless participant running in a thread, keeping the events the server sent it."""

    def __init__(self, url: str, seed: int) -> None:
        self.events: list[tuple[str, Any]] = []
        self.participant = HeadlessParticipant(url, {"PROLIFIC_PID": pid()}, seed=seed,
                                               on_event=lambda name, payload: self.events.append((name, payload)))
        self.result: ParticipantResult | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = self.participant.run(120)

    def finish(self) -> ParticipantResult:
        self.thread.join(130)
        assert self.result is not None
        return self.result


def connect_admin(url: str, **options: Any) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.connect(url, namespaces=["/admin"], transports=["websocket"], wait_timeout=10, **options)
    return client


def test_without_the_token_every_admin_route_and_the_admin_namespace_refuse(study: Study) -> None:
    forged = {"Cookie": "coplay_dash_admin=eyJmcCI6IngiLCJsYWJlbCI6Im1hbGxvcnkifQ.aaaa.bbbb"}
    for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}, forged):
        for method, path in (("GET", "/admin"), ("GET", "/admin/snapshot.json"), ("GET", "/admin/export.zip"),
                             ("GET", "/admin/matches/x/watch"),
                             ("POST", "/admin/entries"), ("POST", "/admin/matches/x/end"),
                             ("POST", "/admin/participants/x/end")):
            response = requests.request(method, study.url + path, json={"paused": True}, timeout=10,
                                        headers={**headers, **JSON_HEADERS})
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert "participants" not in response.text and str(study.folder) not in response.text
    assert study.snapshot()["entries"]["paused"] is False   # the refused pause changed nothing
    wrong = requests.post(study.url + "/admin/login", data={"token": "x" * 40, "name": "mallory"}, timeout=10)
    assert wrong.status_code == 401 and "not the admin token" in wrong.text and "Set-Cookie" not in wrong.headers
    for options in ({}, {"auth": {"token": "not-the-token-at-all"}}, {"headers": forged}, {"auth": {"watch": "x"}}):
        with pytest.raises(socketio.exceptions.ConnectionError):
            connect_admin(study.url, **options)


def test_the_login_cookie_opens_the_page_the_actions_and_the_live_namespace(study: Study) -> None:
    session = requests.Session()
    login = session.post(study.url + "/admin/login", data={"token": study.token, "name": "alice"},
                         allow_redirects=False, timeout=10)
    assert login.status_code == 303
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and study.token not in cookie
    page = session.get(study.url + "/admin", timeout=10)
    assert page.status_code == 200 and 'src="/static/admin.js"' in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    # An action without the JSON header is refused even with the cookie (a cross-site form cannot send it).
    assert session.post(study.url + "/admin/entries", data={"paused": "true"}, timeout=10).status_code == 400
    received: list[dict[str, Any]] = []
    client = socketio.Client(reconnection=False)
    client.on("snapshot", lambda data: received.append(data), namespace="/admin")
    client.connect(study.url, namespaces=["/admin"], transports=["websocket"], wait_timeout=10,
                   headers={"Cookie": "; ".join(f"{c.name}={c.value}" for c in session.cookies)})
    try:
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(received) >= 3, "the dashboard pushes a snapshot about every second"
        assert received[-1]["experiment"] == "dash" and "<svg" in received[-1]["charts"]["people"]
        assert any(a["kind"] == "admin_login" and a["text"] == "by=alice" for a in received[-1]["actions"])
    finally:
        client.disconnect()
    logout = session.post(study.url + "/admin/logout", timeout=10)
    assert logout.status_code == 401 and 'action="/admin/login"' in logout.text   # back on the login form
    assert session.get(study.url + "/admin/snapshot.json", timeout=10).status_code == 401


def test_pausing_entries_shows_new_arrivals_the_configured_page_and_survives_a_restart(study: Study) -> None:
    returning = pid()
    assert requests.get(study.url + "/", params={"PROLIFIC_PID": returning}, timeout=10).status_code == 200
    assert study.post("/admin/entries", {"paused": "yes"}).status_code == 400   # bad input changes nothing
    paused = study.post("/admin/entries", {"paused": True})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    arrival = requests.get(study.url + "/", params={"PROLIFIC_PID": pid()}, timeout=10)
    assert arrival.status_code == 503 and "PAUSED-PAGE: come back tomorrow." in arrival.text
    assert requests.get(study.url + "/", params={"PROLIFIC_PID": returning}, timeout=10).status_code == 200
    study.restart()
    assert study.snapshot()["entries"]["paused"] is True
    assert requests.get(study.url + "/", params={"PROLIFIC_PID": pid()}, timeout=10).status_code == 503
    assert study.post("/admin/entries", {"paused": False}).json()["paused"] is False
    assert requests.get(study.url + "/", params={"PROLIFIC_PID": pid()}, timeout=10).status_code == 200
    with study.db() as db:
        kinds = db.execute("SELECT kind, data FROM events WHERE kind LIKE 'entries_%' ORDER BY id").fetchall()
    assert kinds == [("entries_paused", '{"by":"token"}'), ("entries_resumed", '{"by":"token"}')]


def test_ending_a_match_and_a_participants_study_is_recorded_and_shown_to_them(study: Study) -> None:
    players = [Playing(study.url, seed) for seed in (1, 2)]
    match = study.wait_for(lambda s: s["live"]["matches"] and s["live"]["matches"][0]["frame"] > 30
                           and s["live"]["matches"][0], "a match playing")
    assert {seat["kind"] for seat in match["seats"]} == {"human"}
    waiter = Playing(study.url, 3)
    waiting = study.wait_for(lambda s: [w["participant"] for r in s["live"]["waiting_rooms"] for w in r["waiting"]],
                             "a participant in the waiting room")
    assert study.post("/admin/participants/" + waiting[0] + "/end", {"outcome": "completed"}).status_code == 400
    assert study.post("/admin/participants/" + waiting[0] + "/end", {"note": "x" * 501}).status_code == 400
    excluded = study.post("/admin/participants/" + waiting[0] + "/end", {"note": "saw it before"})
    assert excluded.status_code == 200, excluded.text
    result = waiter.finish()
    assert result.outcome == "excluded" and result.completion_code == "DASH-EXCL"
    assert study.post("/admin/participants/" + waiting[0] + "/end", {}).status_code == 409

    assert study.post("/admin/matches/nosuchmatch/end", {}).status_code == 404
    ended = study.post(f"/admin/matches/{match['id']}/end", {"message": "Stopped for a fire drill."})
    assert ended.status_code == 200, ended.text
    results = [p.finish() for p in players]
    assert all(r.completed for r in results), [r.reason for r in results]
    for player in players:
        assert ("match_end", {"match": match["id"], "reason": "ended_by_researcher",
                              "message": "Stopped for a fire drill."}) in player.events
    with study.db() as db:
        assert db.execute("SELECT status FROM matches WHERE id = ?", (match["id"],)).fetchone() == ("ended_by_researcher",)
        assert db.execute("SELECT status FROM participants WHERE id = ?", (waiting[0],)).fetchone() == ("excluded",)
        actions = db.execute("SELECT kind, participant_id, match_id, data FROM events WHERE kind LIKE 'admin_end%' "
                             "ORDER BY id").fetchall()
    assert actions == [
        ("admin_end_study", waiting[0], None, '{"by":"token","outcome":"excluded","note":"saw it before"}'),
        ("admin_end_match", None, match["id"], '{"by":"token","message":"Stopped for a fire drill."}')]
    snapshot = study.snapshot()
    assert snapshot["matches_ended"].get("ended_by_researcher") == 1
    assert snapshot["participants"]["by_status"]["excluded"] == 1
    assert snapshot["participants"]["completion_codes"] >= 3   # two completed, one excluded (its page has a code)


def test_the_export_download_holds_what_is_finished_so_far(study: Study) -> None:
    response = requests.get(study.url + "/admin/export.zip", params={"format": "csv"}, headers=study.bearer(),
                            timeout=300)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert {"participants.csv", "matches.csv", "events.csv", "steps.csv"} <= set(names)
    participants = zipfile.ZipFile(io.BytesIO(response.content)).read("participants.csv").decode()
    assert "excluded" in participants
    assert requests.get(study.url + "/admin/export.zip", params={"format": "xls"}, headers=study.bearer(),
                        timeout=10).status_code == 400


def test_the_token_never_appears_in_the_logs_or_the_database(study: Study) -> None:
    """Last in this module: it reads what the tests above made the server log and store."""
    logs = getattr(study, "logs", "") + study.server.log_path.read_text()
    assert "coplay: researcher's dashboard at" in logs and study.token not in logs
    folder = study.folder / "data" / "dash"
    for name in ("coplay.sqlite", "coplay.sqlite-wal"):
        path = folder / name
        if path.exists():
            assert study.token.encode() not in path.read_bytes()
