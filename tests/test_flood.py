"""Hostile clients cost little: a flood of bad frames beside an honest pair, on the real server."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from typing import Any, Iterator

import pytest
import requests

from app.data.store import database_path
from app.participant.headless import HeadlessParticipant, ParticipantResult
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
