"""`coplay loadtest --mode wire` against the real server (a subprocess): a small burst completes with
0 disconnects and 0 desyncs, and every match it played replays; the generator reports its own
figures. Games import once before participant threads start (a game whose first construction is
not thread-safe, the CoGrid case of issue 13)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.commands.loadtest import run_loadtest
from app.loadtest.cohort import preload_games
from tests.server_fixtures import ROOT, Server, replay_recording
from tests.test_loadtest_e2e import EXPERIMENT_ID, start_server


def test_a_wire_burst_completes_without_disconnects_or_desyncs_and_replays(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    out = tmp_path / "summary.json"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "loadtest", server.url, "--mode", "wire", "--participants", "6",
             "--processes", "1", "--timeout", "60", "--duration", "90", "--json", str(out), "--progress", "0"],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        summary: dict[str, Any] = json.loads(out.read_text())
        assert (summary["participants"], summary["completed"], summary["failed"]) == (6, 6, 0), summary["failures"]
        assert summary["disconnects"] == 0 and summary["desyncs"] == 0 and summary["errors"] == 0
        assert summary["matches"] == 3 and summary["episodes"] == 12 and summary["match_ends"] == {"completed": 6}
        assert summary["settings"]["mode"] == "wire" and summary["settings"]["processes"] == 1
        assert summary["server"]["relayed_packets"] > 6 * 2 * 90   # every seat's frames of both episodes
        generator = summary["generator"]
        assert generator["processes"] == 1 and generator["packets_sent"] > 6 * 2 * 90
        assert generator["tick_late_ms"]["samples"] > 6 * 2 * 90 and generator["cpu_seconds"] > 0
        assert generator["channel_packets"] >= 0.95 * generator["packets_sent"]   # the raw-socket match channel
        assert summary["verdict"] in ("PASS", "INCONCLUSIVE")   # INCONCLUSIVE only on a machine too busy to tick
        assert "load generator (wire mode, 1 process(es))" in done.stdout and "verdict: " in done.stdout
        matches = {m["match"] for r in summary["results"] for m in r["matches"]}
        for match in matches:
            replayed = replay_recording(server, EXPERIMENT_ID, match)
            assert replayed.ok and replayed.frames >= 2 * 90, (match, replayed)
        replay_cli = subprocess.run(
            [sys.executable, "-m", "app.cli", "replay",
             str(server.data_dir / EXPERIMENT_ID / "recordings" / f"{sorted(matches)[0]}.jsonl")],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert replay_cli.returncode == 0, replay_cli.stdout + replay_cli.stderr
    finally:
        server.stop()


def test_wire_mode_refuses_options_it_cannot_honour() -> None:
    from app.cli import main

    assert main(["loadtest", "http://127.0.0.1:5000", "--mode", "wire", "--profile", "wifi"]) == 2
    assert main(["loadtest", "http://127.0.0.1:5000", "--mode", "wire", "--drop-fraction", "0.1"]) == 2


# ----------------------------------------------------------------------------- issue 13: games import once

UNSAFE_GAME = '''
import threading
import time

from game.games.pong import Pong

_ready = False
_busy = threading.Lock()


def _lazy_import():
    """What CoGrid does on first use: a slow, global, one-time set-up that breaks if two threads run it."""
    global _ready
    if _ready:
        return
    if not _busy.acquire(blocking=False):
        raise RuntimeError("two threads set this game up at once: its import is not thread-safe")
    try:
        time.sleep(0.5)
        _ready = True
    finally:
        _busy.release()


class UnsafePong(Pong):
    def __init__(self, config=None):
        _lazy_import()
        super().__init__(config)
'''
UNSAFE_EXPERIMENT = '''
from scenes import End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="e2e", scenes=[
    Match(id="pong", game="unsafe_game.py:UnsafePong", config={"max_score": 1, "max_frames": 60},
          humans=("left", "right"), episodes=1, fps=60, waiting_room=WaitingRoom(timeout_s=30, on_timeout="ai")),
    End(id="end", html="<p>Thanks</p>", completion_code="E2E-CODE"),
])
'''


def test_games_are_imported_before_participant_threads_start(tmp_path: Path) -> None:
    """Both participants get match_start at once; without the import up front both threads would set
    the game up together and one would crash (issue 13)."""
    (tmp_path / "unsafe_game.py").write_text(UNSAFE_GAME)
    (tmp_path / "experiment.py").write_text(UNSAFE_EXPERIMENT)
    server = Server(["serve", str(tmp_path / "experiment.py")], tmp_path / "data")
    try:
        summary = run_loadtest(server.url, 2, seed=13, timeout=60, duration=60, processes=1)
        assert (summary["completed"], summary["failed"]) == (2, 0), summary["failures"]
        assert any(spec.endswith("unsafe_game.py:UnsafePong") for spec in preload_games(server.url))
    finally:
        server.stop()
