"""The real page in headless Chromium tells a participant the server is busy while admission is closed,
with the countdown paused, and goes back to the usual waiting text once it reopens."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from app.live.admission import BUSY_MESSAGE
from tests.browser_fixtures import open_participant
from tests.server_fixtures import Server, pid
from tests.test_admission_e2e import EXPERIMENT, admission_open, wait_for


def status_text(participant: Any) -> str:
    return str(participant.page.locator(".match-view .status").inner_text(timeout=10_000))


def test_the_waiting_page_shows_the_busy_message_while_admission_is_closed(browser: Any, tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "experiment.py").write_text(EXPERIMENT.replace("timeout_s=3", "timeout_s=600"))
    hog = folder / "hog"
    server = Server(["serve", str(folder / "experiment.py")], tmp_path / "data")
    page = open_participant(browser, server.url, f"PROLIFIC_PID={pid()}")
    try:
        wait_for(lambda: "1 of 2 here. Time left: " in status_text(page), 120, "the waiting room")
        hog.touch()
        wait_for(lambda: admission_open(server) == 0, 30, "admission to close under load")
        wait_for(lambda: status_text(page) == BUSY_MESSAGE, 30, "the busy message")
        time.sleep(2.5)
        assert status_text(page) == BUSY_MESSAGE   # no countdown while the clock is paused
        hog.unlink()
        wait_for(lambda: admission_open(server) == 1, 60, "admission to reopen")
        wait_for(lambda: "1 of 2 here. Time left: " in status_text(page), 30, "the usual waiting text")
        assert not page.console_errors, page.console_errors
    finally:
        hog.unlink(missing_ok=True)
        page.close()
        server.stop()
