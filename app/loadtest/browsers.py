"""The Pyodide start-up storm: M real headless Chromium pages on autopilot at once.

`coplay loadtest URL --browsers M` opens M pages (one browser context each, so one
participant each, with its own PROLIFIC_PID) in one Debian Chromium at the same
moment; each loads Pyodide in its Web Worker and plays the whole experiment by itself
(`?autopilot=1`). From every page's `window.coplay` (static/state.js) it reports how
long Pyodide took to start (page start to worker ready), socket disconnects, and who
reached the end page. Playwright (the `test` extra) is imported only here, when used.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
import urllib.parse
from typing import Any, Callable

from app.loadtest.chromium import CHROMIUM, CHROMIUM_FLAGS
from app.loadtest.charts import percentile
from game.errors import CoplayError

POLL_SECONDS = 0.5
# Seeds the page's Math.random (autopilot inputs, survey answers) so a run is repeatable per seed.
SEEDED_RANDOM = """
(() => {
  let a = %d >>> 0;
  Math.random = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
})();
"""
READ_STATE = "() => JSON.parse(JSON.stringify(window.coplay || {}))"


class BrowsersUnavailable(CoplayError, RuntimeError):
    """Playwright or Chromium is missing; the message says what to install."""

    code = "browsers_unavailable"


def require_browsers() -> Any:
    """Playwright's `sync_playwright`, or BrowsersUnavailable saying what to install."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowsersUnavailable(
            "--browsers needs Playwright's Python package: pip install 'coplay[test]' (or scripts/setup); "
            "it drives Debian's chromium, so never run `playwright install`") from None
    if not os.path.exists(CHROMIUM):
        raise BrowsersUnavailable(f"--browsers needs Chromium at {CHROMIUM}: apt-get install chromium "
                                  "(or set COPLAY_CHROMIUM)")
    return sync_playwright


def page_url(url: str, tag: str, index: int) -> str:
    """The entry URL of browser participant `index` of run `tag`, on autopilot with the HUD hidden."""
    query = urllib.parse.urlencode({
        "PROLIFIC_PID": f"loadtest-{tag}-browser-{index:04d}", "STUDY_ID": "coplay-loadtest", "SESSION_ID": tag,
        "autopilot": "1", "hud": "0",
    })
    return f"{url.rstrip('/')}/?{query}"


def _finished(state: dict[str, Any]) -> bool:
    return _get(state, "scene", "kind") == "end" or bool(_get(state, "worker", "error"))


def _get(state: Any, *keys: str) -> Any:
    for key in keys:
        state = state.get(key) if isinstance(state, dict) else None
    return state


def pyodide_start_seconds(state: dict[str, Any]) -> float | None:
    """Seconds from the page starting Pyodide to the worker being ready (None if it never was)."""
    start, ready = _get(state, "pyodide", "startMs"), _get(state, "pyodide", "readyMs")
    if isinstance(start, (int, float)) and isinstance(ready, (int, float)):
        return round((ready - start) / 1000.0, 3)
    return None


def failure_reason(state: dict[str, Any], crashed: str | None) -> str | None:
    """Why a page did not complete (None when it reached the end page without a game error)."""
    if crashed:
        return crashed
    if _get(state, "worker", "error"):
        return f"game error: {_get(state, 'worker', 'error')}"
    if _get(state, "scene", "kind") != "end":
        scene = _get(state, "scene", "id") or ("Pyodide not ready" if not _get(state, "worker", "ready") else "none")
        return f"timeout at scene {scene}{_match_detail(state)}"
    return None


def _match_detail(state: dict[str, Any]) -> str:
    """Where a page stuck in a match scene was: game not loaded, no match yet, or the match's frame."""
    if _get(state, "scene", "kind") != "match":
        return ""
    if not _get(state, "worker", "loaded"):
        return " (game not loaded)"
    if not _get(state, "match", "match"):
        return " (no match started)"
    return f" (frame {_get(state, 'match', 'frame')}, confirmed {_get(state, 'match', 'confirmed_frame')})"


def summarise(states: list[dict[str, Any]], crashes: list[str | None], wall: float) -> dict[str, Any]:
    """The `browsers` part of the load-test summary."""
    starts = [s for s in (pyodide_start_seconds(state) for state in states) if s is not None]
    failures = [{"page": i, "reason": reason} for i, (state, crashed) in enumerate(zip(states, crashes))
                if (reason := failure_reason(state, crashed)) is not None]
    return {
        "pages": len(states),
        "started": len(starts),
        "completed": len(states) - len(failures),
        "failures": failures,
        "pyodide_start_seconds": starts,
        "disconnects": sum(int(_get(state, "disconnects") or 0) for state in states),
        "errors": sum(len(_get(state, "errors") or []) for state in states),
        "wall_seconds": round(wall, 3),
    }


def run_browsers(url: str, pages: int, timeout: float = 300.0, seed: int = 0) -> dict[str, Any]:
    """Open `pages` autopilot pages at once, wait until each reaches the end page, a game error or
    `timeout` seconds, and summarise. Raises BrowsersUnavailable when Playwright or Chromium is missing."""
    sync_playwright = require_browsers()
    tag = secrets.token_hex(4)   # platform ids must be new on every run
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            contexts, opened = [], []
            crashes: list[str | None] = [None] * pages
            for i in range(pages):
                context = browser.new_context(viewport={"width": 1000, "height": 750})
                context.add_init_script(SEEDED_RANDOM % ((seed * 1_000_003 + i) & 0xFFFFFFFF))
                page = context.new_page()
                page.on("crash", lambda _page, i=i: crashes.__setitem__(i, "the page crashed"))
                contexts.append(context)
                opened.append(page)
            for i, page in enumerate(opened):   # "commit": do not wait for each page's load before the next
                try:
                    page.goto(page_url(url, tag, i), wait_until="commit", timeout=timeout * 1000)
                except Exception as error:   # noqa: BLE001 - any navigation failure is this page's failure
                    crashes[i] = f"could not open the page: {str(error).splitlines()[0]}"
            states: list[dict[str, Any]] = [{} for _ in range(pages)]
            deadline = started + timeout
            while True:
                for i, page in enumerate(opened):
                    if crashes[i] or _finished(states[i]):
                        continue
                    try:
                        states[i] = page.evaluate(READ_STATE)
                    except Exception as error:   # noqa: BLE001 - a navigating or dead page
                        if time.monotonic() > deadline:
                            crashes[i] = f"page unreadable: {str(error).splitlines()[0]}"
                if all(crashes[i] or _finished(states[i]) for i in range(pages)) or time.monotonic() > deadline:
                    break
                time.sleep(POLL_SECONDS)
            for context in contexts:
                context.close()
        finally:
            browser.close()
    return summarise(states, crashes, time.monotonic() - started)


def run_in_background(url: str, pages: int, timeout: float, seed: int = 0) -> Callable[[], dict[str, Any]]:
    """Start run_browsers in a thread (alongside the headless participants); returns a function that
    waits for it and gives its summary (or a summary of the error that stopped it).
    Raises BrowsersUnavailable at once when Playwright or Chromium is missing."""
    require_browsers()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = run_browsers(url, pages, timeout, seed)
        except Exception as error:   # noqa: BLE001 - reported in the summary, not lost in a thread
            outcome["result"] = summarise([{} for _ in range(pages)], [f"browser run failed: {error}"] * pages, 0.0)

    thread = threading.Thread(target=work, name="loadtest-browsers", daemon=True)
    thread.start()

    def join() -> dict[str, Any]:
        thread.join()
        return outcome["result"]

    return join


def format_browsers(result: dict[str, Any]) -> str:
    """Lines for the printed load-test summary."""
    starts = result.get("pyodide_start_seconds") or []
    timing = (f"Pyodide start median {percentile(starts, 50):.2f} s, max {max(starts):.2f} s" if starts
              else "Pyodide never started")
    lines = [f"browsers: {result.get('pages', 0)} pages, {result.get('completed', 0)} completed, "
             f"{result.get('disconnects', 0)} disconnects; {timing}"]
    reasons: dict[str, int] = {}
    for failure in result.get("failures") or []:
        reasons[failure["reason"]] = reasons.get(failure["reason"], 0) + 1
    lines += [f"  browser failed x{n}: {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)
