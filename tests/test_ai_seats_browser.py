"""A seat's `reveal` in the real page (static/match.js) in headless Chromium against the real server:
the page names an AI partner only in the match whose AI seat is revealed."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from app.data.recording import read_recording
from tests.browser_fixtures import open_participant
from tests.server_fixtures import Server, pid

EXPERIMENT = '''
from scenes import AISeat, End, Experiment, Match

def pong(id, ai):
    return Match(id=id, game="game.games.pong:Pong", config={"max_score": 1, "max_frames": 150}, humans=["left"],
                 ai={"right": ai}, keys={"ArrowUp": 1, "ArrowDown": 2})

EXPERIMENT = Experiment(id="reveal", scenes=[
    pong("revealed", AISeat("game.games.policies:PongTracker", reveal=True, reaction_delay_frames=4)),
    pong("hidden", "game.games.policies:PongTracker"),
    End(id="end", html="<p>Thanks</p>", completion_code="REVEAL"),
])
'''

# Every text the match's status line shows, with the match playing at that moment.
STATUS_SCRIPT = """
window.__statusTexts = [];
new MutationObserver(() => {
  for (const element of document.querySelectorAll("p.status[role=status]")) {
    const text = element.hidden ? "" : element.textContent;
    const match = (window.coplay && window.coplay.match && window.coplay.match.match) || null;
    const last = window.__statusTexts[window.__statusTexts.length - 1];
    if (text && !(last && last[0] === text && last[1] === match)) window.__statusTexts.push([text, match]);
  }
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("reveal")
    (folder / "experiment.py").write_text(EXPERIMENT)
    served = Server(["serve", str(folder / "experiment.py")], folder / "data")
    yield served
    served.stop()


def test_the_page_names_the_ai_partner_only_where_the_seat_reveals_it(browser: Any, server: Server) -> None:
    page = open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1", STATUS_SCRIPT)
    try:
        state = page.wait_for(lambda s: len({c["match"] for c in s.get("match", {}).get("checksums", [])}) >= 2,
                              150, "both matches to end")
        texts: list[list[Any]] = page.page.evaluate("() => window.__statusTexts")
        assert not page.console_errors, page.console_errors
    finally:
        page.close()
    scene_of = {}
    for match in {c["match"] for c in state["match"]["checksums"]}:
        scene_of[match] = read_recording(str(server.data_dir / "reveal" / "recordings" / f"{match}.jsonl")).header["scene"]
    assert sorted(scene_of.values()) == ["hidden", "revealed"]
    told = [scene_of.get(match) for text, match in texts if text == "Your partner is an AI."]
    assert told and set(told) == {"revealed"}, texts
    assert not any("AI" in text for text, match in texts if scene_of.get(match) == "hidden"), texts
