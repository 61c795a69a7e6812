"""A click whose `advance` went down with a dying connection is sent again when the page reconnects and
the server shows the same scene: the participant is not left on a scene the server never heard them finish
(seen with a page whose main thread Pyodide blocked past the ping timeout)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser_fixtures import open_participant
from tests.server_fixtures import pid
from tests.test_browser import start_server

ADVANCE = '42["advance"'
BEFORE_ADVANCE_TIMEOUT_S = 12   # static/app.js gives up on an unanswered advance after 15 s


def test_an_advance_lost_with_its_connection_is_sent_again(browser: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path, max_frames=60)
    swallowed: list[str] = []

    def cut_the_first_advance(route: Any) -> None:
        upstream = route.connect_to_server()

        def from_page(message: str | bytes) -> None:
            if not swallowed and isinstance(message, str) and message.startswith(ADVANCE):
                swallowed.append(message)       # never reaches the server: the connection dies with it
                upstream.close()
                route.close()
                return
            upstream.send(message)

        route.on_message(from_page)

    try:
        page = open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1",
                                prepare=lambda context: context.route_web_socket("**/socket.io/**",
                                                                                 cut_the_first_advance))
        state = page.wait_for(lambda s: s.get("disconnects", 0) >= 1 and s.get("connected"), 60,
                              "the page to lose its connection with the consent in it, and reconnect")
        assert swallowed and '"index":0' in swallowed[0].replace(" ", ""), swallowed
        state = page.wait_for(lambda s: s.get("scene", {}).get("index", 0) >= 1, BEFORE_ADVANCE_TIMEOUT_S,
                              "the page to move past the consent it had agreed to")
        assert state["scene"]["id"] == "pong"
        assert not [e for e in state.get("errors", []) if e.get("event") == "advance"], state["errors"]
        page.close()
    finally:
        server.stop()
