"""The dashboard in real Chromium, under its Content-Security-Policy, against the real server: it follows
headless participants live (no reload), and its buttons pause entries, end a running match and end a
real browser participant's study, who then sees the configured outcome page.

Set COPLAY_DASHBOARD_SCREENSHOT=PATH to keep the screenshot taken while the matches run (docs/dashboard.png
is made that way)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from tests.browser_fixtures import open_participant
from tests.server_fixtures import Server, pid
from tests.test_dashboard import EXPERIMENT, Playing

VIOLATIONS_SCRIPT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("dashboard-browser")
    (folder / "experiment.py").write_text(EXPERIMENT)
    running = Server(["serve", str(folder / "experiment.py")], folder / "data", env={"COPLAY_ADMIN_TOKEN": ""})
    yield running
    running.stop()


def admin_state(page: Any) -> dict[str, Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.coplayAdmin))")


def wait_admin(page: Any, predicate: Any, what: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = admin_state(page)
        if state.get("last") and predicate(state["last"]):
            return state["last"]
        page.wait_for_timeout(250)
    raise AssertionError(f"timed out waiting for {what}; last snapshot: {state.get('last')}")


def watch_until(page: Any, predicate: Any, what: str, timeout: float = 30) -> dict[str, Any]:
    """Poll the spectator page's window.coplayWatch (wait_for_function would need eval, which CSP forbids)."""
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = page.evaluate("() => window.coplayWatch ? JSON.parse(JSON.stringify(window.coplayWatch)) : null") or {}
        if state and predicate(state):
            return state
        page.wait_for_timeout(200)
    raise AssertionError(f"timed out waiting for {what}; window.coplayWatch = {state}")


def test_the_dashboard_follows_the_study_live_and_acts_on_it(browser: Any, server: Server, tmp_path: Path) -> None:
    token = (server.data_dir / "dash" / "admin_token").read_text().strip()
    context = browser.new_context(viewport={"width": 1280, "height": 1500})
    context.add_init_script(VIOLATIONS_SCRIPT)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    players: list[Playing] = []
    participant = None
    try:
        page.goto(server.url + "/admin")
        page.fill("#token", token)
        page.fill("#name", "dr-lee")
        page.click("#login")
        page.wait_for_url(server.url + "/admin")
        assert errors == ["Failed to load resource: the server responded with a status of 401 (UNAUTHORIZED)"]
        errors.clear()   # that was the login form, served with 401 Unauthorized until the token is given
        page.evaluate("window.__sameDocument = true")
        first = wait_admin(page, lambda s: True, "the first snapshot")
        assert first["participants"]["total"] == 0
        assert page.locator("#n-total").inner_text() == "0"

        players = [Playing(server.url, seed) for seed in range(4)]
        wait_admin(page, lambda s: s["participants"]["total"] == 4 and len(s["live"]["matches"]) == 2
                   and all(m["frame"] > 60 for m in s["live"]["matches"]), "two matches playing")
        page.wait_for_timeout(1500)   # a few more pushes: frames and round trips on screen
        assert page.locator("#n-total").inner_text() == "4"
        assert page.locator("#n-matches").inner_text() == "2"
        assert page.locator("#chart-rtt svg").count() == 1 and page.locator("#chart-people svg").count() == 1
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("COPLAY_DASHBOARD_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["COPLAY_DASHBOARD_SCREENSHOT"])

        # Its live view: the match re-simulated from its confirmed inputs, drawn, frames advancing.
        running = admin_state(page)["last"]["live"]["matches"]
        with context.expect_page() as opened:
            page.get_by_role("link", name=running[0]["id"]).click()
        watcher = opened.value
        watch_until(watcher, lambda w: w["frames"] > 5, "the first frames")
        first_frame = watcher.evaluate("window.coplayWatch.frame")
        watcher.wait_for_timeout(1000)
        later = watcher.evaluate("window.coplayWatch")
        assert later["frame"] > first_frame + 20 and later["episode"] == 0, (first_frame, later)
        fresh = requests.get(server.url + "/admin/snapshot.json", headers={"Authorization": f"Bearer {token}"},
                             timeout=10).json()
        confirmed = next(m["frame"] for m in fresh["live"]["matches"] if m["id"] == running[0]["id"])
        assert later["frame"] <= confirmed   # never ahead of what every seat confirmed
        drawn = watcher.evaluate("""() => { const c = document.getElementById('canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 300) lit++;
            return lit; }""")
        assert drawn > 50, "the live view draws the game's primitives"

        # End that match from its row, with a message; its live view says so.
        page.fill("#end-message", "The session is over, thank you.")
        page.get_by_role("button", name=f"End match {running[0]['id']}").click()
        wait_admin(page, lambda s: s["matches_ended"].get("ended_by_researcher") == 1, "the match ended")
        watch_until(watcher, lambda w: w["ended"], "the live view to say the match ended")
        assert watcher.evaluate("window.__cspViolations") == []
        ended = [p for p in players if any(name == "match_end" and payload["match"] == running[0]["id"]
                                           for name, payload in p.events)]
        assert len(ended) == 2
        for player in ended:
            assert ("match_end", {"match": running[0]["id"], "reason": "ended_by_researcher",
                                  "message": "The session is over, thank you."}) in player.events

        # A real browser participant, ended from the dashboard, sees the configured outcome page.
        participant = open_participant(browser, server.url, f"PROLIFIC_PID={pid()}")
        participant.wait_for(lambda s: s.get("scene", {}).get("kind") == "consent", 60, "the consent page")
        newest = wait_admin(page, lambda s: s["participants"]["total"] == 5, "the fifth participant")
        person = newest["participants"]["recent"][0]
        page.select_option("#outcome", "excluded")
        page.get_by_role("button", name=f"End the study of {person['id']}").click()
        participant.page.get_by_text("EXCLUDED-PAGE").wait_for(timeout=20_000)
        wait_admin(page, lambda s: s["participants"]["by_status"].get("excluded") == 1, "the exclusion")

        # Pause entries: a new arrival sees the configured page; resume again.
        page.click("#entries-toggle")
        wait_admin(page, lambda s: s["entries"]["paused"] and s["entries"]["by"] == "dr-lee", "entries paused")
        arrival = requests.get(server.url + "/", params={"PROLIFIC_PID": pid()}, timeout=10)
        assert arrival.status_code == 503 and "PAUSED-PAGE" in arrival.text
        page.click("#entries-toggle")
        wait_admin(page, lambda s: not s["entries"]["paused"], "entries open again")

        last = wait_admin(page, lambda s: [a["kind"] for a in s["actions"]][:3]
                          == ["entries_resumed", "entries_paused", "admin_end_study"], "the actions listed")
        assert all("by=dr-lee" in a["text"] for a in last["actions"][:4])
        assert page.evaluate("window.__sameDocument") is True   # all of the above without a reload
        assert admin_state(page)["snapshots"] >= 10
        assert page.evaluate("window.__cspViolations") == []
        assert errors == []
    finally:
        if participant is not None:
            participant.close()
        context.close()
        for player in players:
            player.participant.stop("the test is over")
