"""Hostile clients cost little: a flood of bad frames beside an honest pair, on the real server."""
from __future__ import annotations

import json
import select
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import pytest
import requests
import websocket

from app.data.store import database_path
from app.live.metrics import parse_metrics
from app.live.ratelimit import DEFAULT_BUDGET
from app.participant.headless import HeadlessParticipant
from app.participant.result import ParticipantResult
from tests.server_fixtures import ROOT, Server, pid, run_together

FLOOD_EXPERIMENT = '''
from scenes import Consent, End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="flood", scenes=[
    Consent(id="consent", markdown="Agree?"),
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1000, "max_frames": 240},
          humans=("left", "right"), fps=60, waiting_room=WaitingRoom(timeout_s=30, on_timeout="leave"),
          on_partner_drop="end"),
    End(id="end", html="<p>Thanks</p>", completion_code="FLOOD"),
])
'''
FLOOD_SECONDS = 4.0
FLOOD_RATE = 5000.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("flood")
    experiment = folder / "flood.py"
    experiment.write_text(FLOOD_EXPERIMENT)
    running = Server(["serve", str(experiment)], folder / "data")
    yield running
    running.stop()


def entry_cookie(server: Server) -> tuple[str, str]:
    """(cookie, platform id) of a new participant who loaded the entry page."""
    platform_id = pid()
    with requests.Session() as http:
        assert http.get(server.url + "/", params={"PROLIFIC_PID": platform_id}, timeout=10).status_code == 200
        return "; ".join(f"{c.name}={c.value}" for c in http.cookies), platform_id


def rows_not_of(server: Server, platform_ids: list[str]) -> int:
    """Rows of every table that belong neither to a participant in `platform_ids` nor to their matches."""
    with sqlite3.connect(database_path(str(server.data_dir), "flood")) as db:
        def ids(query: str, params: list[str]) -> list[str]:
            return [row[0] for row in db.execute(query.format(marks(params)), params)]

        people = ids("SELECT id FROM participants WHERE platform_id IN ({})", platform_ids)
        matches = ids("SELECT DISTINCT match_id FROM match_participants WHERE participant_id IN ({})", people)
        owned = {
            "participants": ("id IN ({p})", people), "scene_visits": ("participant_id IN ({p})", people),
            "survey_answers": ("participant_id IN ({p})", people), "matches": ("id IN ({m})", matches),
            "match_participants": ("match_id IN ({m})", matches),
            "events": ("participant_id IN ({p}) OR match_id IN ({m})", people + matches),
        }
        total = 0
        for table, (where, params) in owned.items():
            condition = where.format(p=marks(people), m=marks(matches))
            total += db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            total -= db.execute(f"SELECT count(*) FROM {table} WHERE {condition}", params).fetchone()[0]
        return total


def marks(values: list[str]) -> str:
    """SQL placeholders for `values` (a list that matches nothing when empty)."""
    return ",".join("?" * len(values)) or "NULL"


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def run_flood(server: Server, cookie: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "flooder.py"), server.url, cookie,
                           str(FLOOD_SECONDS), str(FLOOD_RATE)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_flood_beside_an_honest_pair_costs_little(server: Server) -> None:
    flooder_cookie, flooder_id = entry_cookie(server)
    pair_ids = [pid(), pid()]
    rows_before = rows_not_of(server, pair_ids)
    figures: dict[str, Any] = {}
    flood_thread = threading.Thread(target=lambda: figures.update(run_flood(server, flooder_cookie)))
    flood_thread.start()
    pair: list[ParticipantResult] = run_together(
        [HeadlessParticipant(server.url, {"PROLIFIC_PID": p}, seed=i) for i, p in enumerate(pair_ids)], timeout=40)
    flood_thread.join()
    rows_added = rows_not_of(server, pair_ids) - rows_before
    rtts = [rtt for result in pair for rtt in result.relay_rtt_ms]
    figures.update(rows_added=rows_added, rtt_samples=len(rtts), rtt_p99_ms=p99(rtts) if rtts else None,
                   pair=[result.reason for result in pair], match_end=[m.get("reason") for r in pair for m in r.matches],
                   tracebacks=server.log_path.read_text().count("Traceback"))
    print("flood figures:", json.dumps(figures))
    assert all(result.completed and result.ok for result in pair), figures
    assert [m["reason"] for r in pair for m in r.matches] == ["completed", "completed"]
    assert rtts and p99(rtts) < 250, figures
    assert rows_added < 200, figures
    assert "Traceback" not in server.log_path.read_text()


# ----------------------------------------------------------------------------- frame by frame


class RawSocket:
    """A participant's WebSocket speaking raw Engine.IO/Socket.IO frames, read one at a time."""

    def __init__(self, server: Server, cookie: str) -> None:
        address = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(address, header=[f"Cookie: {cookie}"], timeout=5)
        self.backlog: list[str] = []
        assert self.recv().startswith("0{")
        self.ws.send("40")
        self.connected = self.until(lambda m: m.startswith(("40", "44")), keep=True)

    def recv(self) -> str:
        """The next frame other than a ping; "" once the server closed the socket."""
        if self.backlog:
            return self.backlog.pop(0)
        while True:
            try:
                message = self.ws.recv()
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return ""
            if message != "2":
                return message if isinstance(message, str) else "<binary>"
            self.ws.send("3")

    def until(self, wanted: Callable[[str], bool], keep: bool = False) -> str:
        """The first frame `wanted` picks ("" if the socket closes first); the others are dropped,
        or with `keep` left for `recv`."""
        skipped = []
        while True:
            message = self.recv()
            if not message or wanted(message):
                self.backlog[:0] = skipped if keep else []
                return message
            skipped.append(message)

    def send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self.ws.send_binary(frame)
        else:
            self.ws.send(frame)

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        finally:
            self.ws.shutdown()   # close() leaves the socket open when the server closed it first


def event(message: str) -> tuple[str, Any]:
    """(name, payload) of a Socket.IO event frame."""
    assert message.startswith("42["), message
    name, *payload = json.loads(message[2:])
    return name, payload[0] if payload else None


MALFORMED = [
    ('42[', "malformed frame"), ('42123', "malformed event"), ('42"abc"', "malformed event"),
    ('42{}', "malformed event"), ('42[]', "malformed event"), ('42[1,2]', "malformed event"),
    ('42', "malformed event"), ('4', "unexpected Socket.IO packet"), ('4x', "unexpected Socket.IO packet"),
    ('40', "unexpected Socket.IO packet"), ('43[]', "unexpected Socket.IO packet"),
    ('44{}', "unexpected Socket.IO packet"), ('42/admin,["advance",{}]', "malformed event"),
    ('451-["advance",{"_placeholder":true,"num":0}]', "unexpected Socket.IO packet"),
    (b"\x00\xffbinary", "binary frames are not accepted"),
    ('42["connect",{}]', "unknown event 'connect'"), ('42["disconnect"]', "unknown event 'disconnect'"),
    ('42["message","hi"]', "unknown event 'message'"), ('42["advance",1,2,3]', "advance takes a JSON object"),
]


def test_malformed_frames_and_reserved_names_get_an_error_and_change_nothing(server: Server) -> None:
    cookie, _ = entry_cookie(server)
    raw = RawSocket(server, cookie)
    try:
        assert raw.connected.startswith("40")
        assert event(raw.until(lambda m: m.startswith('42["scene"')))[1]["index"] == 0
        for frame, reason in MALFORMED:
            raw.send(frame)
            name, error = event(raw.recv())
            assert name == "error" and reason in error["reason"], (frame, error)
        raw.send('9')          # not an Engine.IO packet type: Engine.IO drops it
        raw.send('421["client_error",{"message":"an ack is asked for"}]')
        assert raw.recv() == "431[]"
        raw.send('42["advance",{"index":0,"data":{"accept":true}}]')   # still connected, still at scene 0
        name, scene = event(raw.recv())
        assert name == "scene" and scene["index"] == 1
    finally:
        raw.close()
    deadline = time.monotonic() + 5
    while True:
        with sqlite3.connect(database_path(str(server.data_dir), "flood")) as db:
            participant = "(SELECT participant_id FROM events WHERE data LIKE '%an ack is asked for%')"
            connects = db.execute(f"SELECT count(*) FROM events WHERE kind = 'connect' AND participant_id = {participant}")
            refused = [json.loads(data) for data, in db.execute(
                f"SELECT data FROM events WHERE kind = 'refused' AND participant_id = {participant}")]
            connected = connects.fetchone()[0]
        if sum(sum(r["counts"].values()) for r in refused) == len(MALFORMED) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert connected == 1    # events named `connect` connected nobody
    assert sum(sum(r["counts"].values()) for r in refused) == len(MALFORMED) and len(refused) <= 3, refused
    assert refused[0]["first"] == "*: malformed frame: not a Socket.IO event"
    assert "Traceback" not in server.log_path.read_text()


@pytest.mark.parametrize("size", [70_000, 200_000])
def test_an_oversized_frame_closes_the_socket_cleanly(server: Server, size: int) -> None:
    cookie, _ = entry_cookie(server)
    raw = RawSocket(server, cookie)
    raw.send('42["advance",{"index":0,"data":{"x":"' + "a" * size + '"}}]')
    assert raw.until(lambda m: False) == ""
    raw.close()
    again = RawSocket(server, cookie)      # the participant can come back
    assert again.connected.startswith("40")
    again.close()
    assert "Traceback" not in server.log_path.read_text()


def test_a_flood_is_disconnected_with_a_reason_and_a_second_tab_gets_no_fresh_budget(server: Server) -> None:
    cookie, _ = entry_cookie(server)
    refused_connections = refusals(server, "connect_rate")
    raw = RawSocket(server, cookie)
    assert raw.connected.startswith("40")
    started = time.monotonic()
    reasons = []
    while time.monotonic() - started < 6:
        for _ in range(50):
            raw.send('42["ready",{"index":99}]')
        time.sleep(0.01)
        while raw.ws.sock is not None and select.select([raw.ws.sock], [], [], 0)[0]:
            message = raw.recv()
            if message.startswith('42["error",{"event":"*"'):
                reasons.append(event(message)[1]["reason"])
            if message.startswith("41") or not message:
                break
        else:
            continue
        break
    assert reasons[0].startswith("too many events: at most 240 per second")
    assert reasons[-1] == "disconnected: more than 240 events per second for over 2 s", reasons
    assert 2 < time.monotonic() - started < 4, time.monotonic() - started
    second_tab = RawSocket(server, cookie)
    assert second_tab.connected.startswith("44")    # a flood leaves its participant no budget for a while
    second_tab.close()
    raw.close()
    time.sleep(DEFAULT_BUDGET.penalty_s + 0.5)
    third = RawSocket(server, cookie)
    assert third.connected.startswith("40")
    third.close()
    assert refusals(server, "connect_rate") >= refused_connections + 1
    assert refusals(server, "rate_limited") > 0


def refusals(server: Server, why: str) -> float:
    samples = parse_metrics(requests.get(server.url + "/metrics", timeout=5).text)
    return samples.get(("coplay_refusals_total", (("why", why),)), 0.0)
