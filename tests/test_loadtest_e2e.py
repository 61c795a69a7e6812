"""`coplay loadtest` against the real server (a subprocess): a 20-participant burst over two
worker processes with the HTML report, a fault run where a tenth of the participants vanish
mid-match, a run behind a simulated wifi link, and the `--duration` hard stop."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.commands.loadtest import run_loadtest
from app.loadtest.arrival import parse_arrival
from app.data.store import DATABASE_NAME, Store
from tests.server_fixtures import ROOT, Server, replay_recording
from tests.test_server_e2e import SHORT_EXPERIMENT   # consent, page, survey, 2 short Pong episodes, end

EXPERIMENT_ID = "e2e"
SURVEY_QUESTIONS = 4   # the "before" survey of SHORT_EXPERIMENT


def start_server(folder: Path) -> Server:
    experiment = folder / "experiment.py"
    experiment.write_text(SHORT_EXPERIMENT)
    return Server(["serve", str(experiment)], folder / "data")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("loadtest"))
    yield running
    running.stop()


def loadtest_cli(server: Server, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    command = [sys.executable, "-m", "app.cli", "loadtest", server.url, "--timeout", "60", "--duration", "90", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def test_loadtest_burst_20(server: Server, tmp_path: Path) -> None:
    out, report = tmp_path / "summary.json", tmp_path / "report"
    done, _ = loadtest_cli(server, "--participants", "20", "--arrival", "burst", "--processes", "2",
                           "--json", str(out), "--report", str(report), "--progress", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "20 started, 20 completed, 0 failed" in done.stdout
    assert "loadtest " in done.stdout and "completed 20" in done.stdout   # progress lines, plain (not a TTY)
    summary: dict[str, Any] = json.loads(out.read_text())
    assert {"participants", "completed", "failed", "failures", "disconnects", "desyncs", "errors"} <= set(summary)
    assert (summary["participants"], summary["completed"], summary["failed"], summary["dropped"]) == (20, 20, 0, 0)
    assert summary["disconnects"] == 0 and summary["desyncs"] == 0 and summary["errors"] == 0
    assert summary["matches"] >= 10 and summary["episodes"] == 40
    assert summary["settings"]["processes"] == 2 and summary["settings"]["arrival"] == "burst"
    assert summary["relay_rtt_ms"]["samples"] > 0 and summary["relay_rtt_ms"]["p99"] >= summary["relay_rtt_ms"]["p50"]
    assert summary["frames"] > 0 and summary["rollbacks_per_100_frames"] is not None
    generator = summary["generator"]   # the full participants send their packets on the match channel
    assert generator["channel_packets"] > 0.9 * generator["packets_sent"] > 0
    assert f"({generator['channel_packets']} of {generator['packets_sent']} sent on match channels)" in done.stdout
    assert len(summary["samples"]["connect_seconds"]) == 20 and summary["connect_seconds"]["p95"] is not None
    assert summary["timeline"] and summary["timeline"][0]["phases"]
    server_figures = summary["server"]
    assert server_figures is not None, summary.get("server_note")
    assert server_figures["cpu_seconds"] > 0 and server_figures["rss_bytes_max"] > 0
    assert server_figures["relayed_packets"] > 0 and server_figures["cpu_us_per_relayed_packet"] > 0
    assert server_figures["relay_seconds_p99"] is not None
    assert (report / "index.html").is_file() and summary["report"] == str(report / "index.html")


def test_loadtest_fault_drop(tmp_path: Path) -> None:
    """A tenth of the participants vanish mid-match: they count as dropped, their partners finish
    with an AI (the scene's on_partner_drop), and the server lost nothing."""
    server = start_server(tmp_path)
    try:
        out = tmp_path / "summary.json"
        done, _ = loadtest_cli(server, "--participants", "20", "--drop-fraction", "0.1", "--seed", "11",
                               "--json", str(out), "--report", str(tmp_path / "report"), "--progress", "0")
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    summary: dict[str, Any] = json.loads(out.read_text())
    assert (summary["participants"], summary["dropped"], summary["completed"], summary["failed"]) == (20, 2, 18, 0)
    assert summary["desyncs"] == 0 and summary["disconnects"] == 0
    assert (tmp_path / "report" / "index.html").is_file()
    results = summary["results"]
    gone = [r for r in results if r["dropped"]]
    assert len(gone) == 2 and all(r["reason"].startswith("dropped at frame") for r in gone)
    dropped_seats = {(m["match"], m["seat"]) for r in gone for m in r["matches"]}
    dropped_matches = {match for match, _ in dropped_seats}
    partners = [r for r in results if not r["dropped"] and {m["match"] for m in r["matches"]} & dropped_matches]
    # Each dropper leaves a human partner behind, unless the two were paired together (1 chance in 19).
    assert len(partners) == (2 if len(dropped_matches) == 2 else 0), (dropped_matches, len(partners))
    for partner in partners:
        assert partner["completed"] and partner["outcome"] == "completed", partner["reason"]
        taken = [d for d in partner["disconnects"] if d["source"] == "server"]
        assert taken and all(d["status"] in ("absent", "replaced") and (d["match"], d["seat"]) in dropped_seats
                             for d in taken)
        assert [e["status"] for e in partner["episodes"]] == ["done", "done"]
    assert summary["partner_drops"] == len(partners)
    # Held for them (a stand-in plays), then an AI once the grace period is over if the match is still on.
    drops_by = summary["partner_drops_by"]
    assert drops_by.get("absent", 0) == len(partners) and set(drops_by) <= {"absent", "replaced"}, drops_by
    # Nothing recorded is lost: every match replays up to where it is; every participant and answer is stored.
    matches = {m["match"] for r in results for m in r["matches"]}
    assert len(matches) >= 10
    for match in matches:
        replayed = replay_recording(server, EXPERIMENT_ID, match)
        assert replayed.ok and replayed.frames >= 30, (match, replayed)
    with Store(str(server.data_dir / EXPERIMENT_ID / DATABASE_NAME)) as store:
        people = store.participants()
        assert len(people) == 20
        assert sum(p.status == "completed" for p in people) == 18
        answers = store.answers(scene_id="before")
        assert len(answers) == 20 * SURVEY_QUESTIONS
        assert {m.id for m in store.matches()} == matches


def test_loadtest_behind_a_wifi_profile(server: Server) -> None:
    summary = run_loadtest(server.url, 6, seed=5, timeout=60, profile="wifi", duration=60)
    assert summary["failed"] == 0, summary["failures"]
    assert summary["completed"] == 6 and summary["desyncs"] == 0 and summary["disconnects"] == 0
    assert summary["settings"]["profile"] == "wifi" and summary["rollbacks"] > 0
    links = [r["link"] for r in summary["results"]]
    assert all(link and link["outgoing"]["pushed"] > 0 and link["incoming"]["delivered"] > 0 for link in links)
    assert sum(link["outgoing"]["dropped"] + link["incoming"]["dropped"] for link in links) > 0   # 1% loss


def test_loadtest_stops_itself_at_duration(server: Server) -> None:
    """One participant waits alone (the room's timeout is 3 s); a 1.5 s run stops it cleanly."""
    started = time.monotonic()
    summary = run_loadtest(server.url, 1, seed=6, timeout=60, duration=1.5, arrival=parse_arrival("burst"))
    assert time.monotonic() - started < 15
    assert summary["stopped_at_duration"] and summary["completed"] == 0 and summary["failed"] == 1
    assert summary["failures"] == [{"participant": 0, "reason": "still running at --duration"}]




CRASHING_AI_EXPERIMENT = '''
from scenes import End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="e2e", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1, "max_frames": 600},
          humans=("left",), ai={"right": "crash_policy.py:CrashesAfterAWhile"}, episodes=1, fps=60,
          waiting_room=WaitingRoom(timeout_s=3, on_timeout="ai")),
    End(id="end", html="<p>Thanks</p>", completion_code="E2E-CODE"),
])
'''
CRASHING_POLICY = '''
class CrashesAfterAWhile:
    """Plays the default action, then (frame 30) answers with something outside the action space."""

    def __init__(self):
        self.calls = 0

    def act(self, observation):
        self.calls += 1
        return "no such action" if self.calls > 30 else None
'''


def test_loadtest_fails_a_participant_whose_match_ended_in_error(tmp_path: Path) -> None:
    """The AI partner crashes mid-match, so the match ends in `error`; the participant still reaches
    the end scene, but the load test counts it as failed and exits 1 (it used to say completed, exit 0)."""
    (tmp_path / "experiment.py").write_text(CRASHING_AI_EXPERIMENT)
    (tmp_path / "crash_policy.py").write_text(CRASHING_POLICY)
    server = Server(["serve", str(tmp_path / "experiment.py")], tmp_path / "data")
    try:
        out = tmp_path / "summary.json"
        done, _ = loadtest_cli(server, "--participants", "2", "--json", str(out), "--progress", "0")
    finally:
        server.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    summary: dict[str, Any] = json.loads(out.read_text())
    assert (summary["completed"], summary["failed"], summary["match_errors"]) == (2, 2, 2), summary["failures"]
    assert summary["failure_reasons"] == {"match ended in error": 2}
    assert summary["match_ends"] == {"error": 2}
    assert "matches ended in error: 2" in done.stdout
