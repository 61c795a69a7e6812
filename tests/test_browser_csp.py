"""The demo page under its Content-Security-Policy in real Chromium: Pyodide boots and the study plays through,
in a Web Worker and in the page itself, with no CSP violation and no console error."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from tests.browser_fixtures import Participant, open_participant
from tests.server_fixtures import Server, pid

# Collects every CSP violation the page sees, from before its first script runs.
VIOLATIONS_SCRIPT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI} (${event.sourceFile}:${event.lineNumber})`);
});
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(["demo"], tmp_path_factory.mktemp("csp") / "data")
    yield server
    server.stop()


def test_the_demo_plays_through_under_its_content_security_policy(browser: Any, demo: Server, tmp_path: Path) -> None:
    page_headers = requests.get(demo.url + "/", params={"PROLIFIC_PID": pid()}, timeout=10).headers
    assert "'wasm-unsafe-eval'" in page_headers["Content-Security-Policy"]
    pages: list[Participant] = []
    try:
        pages = [open_participant(browser, demo.url, f"PROLIFIC_PID={pid()}&autopilot=1", VIOLATIONS_SCRIPT),
                 open_participant(browser, demo.url, f"PROLIFIC_PID={pid()}&autopilot=1",
                                  VIOLATIONS_SCRIPT + "window.Worker = undefined;")]
        states = [p.wait_for(lambda s: s.get("scene", {}).get("kind") == "end", 240, "the end page") for p in pages]
        assert [s["worker"]["mode"] for s in states] == ["worker", "inline"]
        assert all(s["worker"]["error"] is None and len(s["match"]["checksums"]) >= 2 for s in states)
        for state in states:   # packets went on the match channel, which the server closed only at match ends
            assert state["channel"]["packets"] > 100 and set(state["channel"]["closes"]) <= {4410}, state["channel"]
        for page in pages:
            assert page.page.evaluate("window.__cspViolations") == []
            assert page.console_errors == []
            assert page.page.locator("text=COPLAY-DEMO").count() >= 1
    finally:
        for page in pages:
            page.close()
