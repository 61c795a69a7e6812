"""Headless Debian Chromium driven by Playwright, for tests of the real page and worker."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from app.loadtest.chromium import CHROMIUM, CHROMIUM_FLAGS

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "LONG_TASKS_SCRIPT", "Participant", "open_participant"]
# Collects the main thread's long tasks (PerformanceObserver) from the very start of the page.
LONG_TASKS_SCRIPT = """
window.__longTasks = [];
try {
  new PerformanceObserver(list => {
    for (const entry of list.getEntries()) window.__longTasks.push({start: entry.startTime, ms: entry.duration});
  }).observe({type: "longtask", buffered: true});
} catch (e) { window.__longTasks = null; }
"""


@dataclass
class Participant:
    """One browser context (its own cookies) with one page on the server."""

    page: Any
    context: Any
    console_errors: list[str] = field(default_factory=list)

    def coplay(self) -> dict[str, Any]:
        return self.page.evaluate("() => JSON.parse(JSON.stringify(window.coplay || {}))")

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.coplay()
            if predicate(state):
                return state
            self.page.wait_for_timeout(250)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; window.coplay = {state}")

    def close(self) -> None:
        self.context.close()


def open_participant(browser: Any, url: str, query: str, init_script: str = "",
                     prepare: Callable[[Any], None] | None = None) -> Participant:
    """A new participant's page at `url/?query`; `init_script` runs before the page's own scripts, and
    `prepare(context)` before the page opens (e.g. to route its WebSockets)."""
    context = browser.new_context(viewport={"width": 1000, "height": 750})
    context.add_init_script(LONG_TASKS_SCRIPT + init_script)
    if prepare is not None:
        prepare(context)
    page = context.new_page()
    participant = Participant(page, context)
    page.on("console", lambda message: participant.console_errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: participant.console_errors.append(str(error)))
    page.goto(f"{url}/?{query}")
    return participant
