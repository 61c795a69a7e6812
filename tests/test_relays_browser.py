"""The dashboard of a coordinator with a relay, in real Chromium: a relayed match shows where it runs, its frame
and its seats' pings, the health panel lists the relay's figures, and the live view of a relayed match says
that it is not available instead of showing an empty stage."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.relay_fixtures import SECRET, Relay, RedisServer, redis_server  # noqa: F401  (a fixture)
from tests.server_fixtures import Server, run_together
from tests.test_dashboard_browser import VIOLATIONS_SCRIPT, wait_admin, watch_until
from tests.test_relays import experiment_file, pair


def test_the_dashboard_shows_relayed_matches_and_the_relays(browser: Any, tmp_path: Path,
                                                            redis_server: RedisServer) -> None:  # noqa: F811
    coordinator = Server(["serve", str(experiment_file(tmp_path, 1200)), "--redis", redis_server.url],
                         tmp_path / "data", env={**SECRET, "COPLAY_ADMIN_TOKEN": ""})
    relay = Relay("r1", coordinator.url, redis_server, "relayed", coordinator.data_dir)
    context = browser.new_context(viewport={"width": 1280, "height": 1500})
    context.add_init_script(VIOLATIONS_SCRIPT)
    errors: list[str] = []
    starts: list[dict[str, Any]] = []
    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.extend(run_together(pair(coordinator, starts, 5), timeout=90)))
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(coordinator.url + "/admin")
        page.fill("#token", (coordinator.data_dir / "relayed" / "admin_token").read_text().strip())
        page.fill("#name", "dr-lee")
        page.click("#login")
        page.wait_for_url(coordinator.url + "/admin")
        page.wait_for_load_state("load")   # admin.js (a module) has run: window.coplayAdmin is there
        runner.start()

        def relayed_and_moving(snapshot: dict[str, Any]) -> bool:
            running = snapshot["live"]["matches"]
            return bool(running) and running[0]["frame"] > 60 and running[0]["seats"][0]["ping_ms"] is not None
        snapshot = wait_admin(page, relayed_and_moving, "a relayed match with its frame and pings")
        match = snapshot["live"]["matches"][0]
        assert match["relay"] == "r1"
        row = page.locator("#matches tr").first.inner_text()
        assert "relay r1" in row and str(match["id"]) in row
        assert page.locator("#h-relays").inner_text().startswith("r1: 1 matches, lag ")

        watch = context.new_page()
        watch.on("pageerror", lambda error: errors.append(str(error)))
        watch.goto(f"{coordinator.url}/admin/matches/{match['id']}/watch")
        state = watch_until(watch, lambda s: s.get("unsupported"), "the relayed match's live view to say why not")
        assert "runs on relay r1" in state["unsupported"]
        assert "runs on relay r1" in watch.locator("#counter").inner_text()
        assert not watch.locator("#stage").is_visible()
        assert errors == [] and page.evaluate("() => window.__cspViolations") == []
        runner.join()
        for result in results:
            assert result.completed and result.ok, result.to_json()
    finally:
        if runner.is_alive():
            runner.join()
        context.close()
        relay.stop()
        coordinator.stop()
