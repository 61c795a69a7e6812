"""`coplay loadtest --browsers M`: real headless Chromium pages on autopilot against the real server."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app.loadtest.chromium import CHROMIUM
from app.loadtest.browsers import failure_reason, page_url, pyodide_start_seconds, run_in_background
from tests.server_fixtures import Server

EXPERIMENT = '''
from scenes import Consent, End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="browsers", scenes=[
    Consent(id="consent", markdown="Agree?"),
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1, "max_frames": 240},
          humans=("left", "right"), fps=60, waiting_room=WaitingRoom(timeout_s=60, on_timeout="ai"),
          on_partner_drop="ai", fill_policy="game.games.policies:PongTracker",
          keys={"ArrowUp": 1, "ArrowDown": 2}),
    End(id="end", html="<p>Thanks</p>", completion_code="BROWSERS"),
])
'''


def test_two_autopilot_pages_complete_and_report_pyodide_start_times(tmp_path: Path) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup, which installs Debian's chromium")
    (tmp_path / "experiment.py").write_text(EXPERIMENT)
    server = Server(["serve", str(tmp_path / "experiment.py")], tmp_path / "data")
    try:
        # In a thread, as `coplay loadtest --browsers` runs it (and away from the suite's own Playwright loop).
        result = run_in_background(server.url, pages=2, timeout=180, seed=1)()
    finally:
        server.stop()
    assert result["failures"] == [], result
    assert result["pages"] == result["started"] == result["completed"] == 2
    assert len(result["pyodide_start_seconds"]) == 2 and all(s > 0 for s in result["pyodide_start_seconds"])
    assert result["disconnects"] == 0


def test_page_state_is_read_into_start_times_and_reasons() -> None:
    url = page_url("http://127.0.0.1:5000/", "abcd", 3)
    assert url.startswith("http://127.0.0.1:5000/?PROLIFIC_PID=loadtest-abcd-browser-0003&") and "autopilot=1" in url
    ready = {"pyodide": {"startMs": 100, "readyMs": 2600}, "worker": {"ready": True, "error": None},
             "scene": {"kind": "end", "id": "end"}}
    assert pyodide_start_seconds(ready) == 2.5 and pyodide_start_seconds({}) is None
    assert failure_reason(ready, None) is None
    assert failure_reason(ready, "the page crashed") == "the page crashed"
    assert failure_reason({"worker": {"ready": False}}, None) == "timeout at scene Pyodide not ready"
    assert failure_reason({"worker": {"ready": True, "error": "boom"}, "scene": {"kind": "match", "id": "pong"}},
                          None) == "game error: boom"


def test_without_playwright_the_cli_exits_2_with_a_clear_message(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)   # import fails as if not installed
    assert main(["loadtest", "http://127.0.0.1:9", "--participants", "1", "--browsers", "2"]) == 2
    assert "--browsers needs Playwright" in capsys.readouterr().err


def test_the_printed_line_gives_the_median_and_max_start_and_counts_failures() -> None:
    from app.loadtest.browsers import format_browsers

    text = format_browsers({"pages": 3, "completed": 2, "disconnects": 1, "pyodide_start_seconds": [5.0, 6.0],
                            "failures": [{"page": 2, "reason": "timeout (no match started)"}]})
    assert text.splitlines() == [
        "browsers: 3 pages, 2 completed, 1 disconnects; Pyodide start median 5.50 s, max 6.00 s",
        "  browser failed x1: timeout (no match started)",
    ]
    assert "Pyodide never started" in format_browsers({"pages": 1})
