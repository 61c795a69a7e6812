"""The real page and Pyodide worker in headless Debian Chromium, against the real server."""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.participant.headless import HeadlessParticipant
from app.data.recording import read_recording
from tests.browser_fixtures import Participant, open_participant
from tests.server_fixtures import Server, pid, replay_recording
from tests.test_arbitration import SOLO_EXPERIMENT, SOLO_GAME

PONG_EXPERIMENT = '''
from scenes import Consent, End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="browser", scenes=[
    Consent(id="consent", markdown="Agree?"),
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1, "max_frames": MAX_FRAMES},
          humans=("left", "right"), fps=60, waiting_room=WaitingRoom(timeout_s=60, on_timeout="ai"),
          on_partner_drop="ai", fill_policy="game.games.policies:PongTracker",
          keys={"ArrowUp": 1, "ArrowDown": 2}),
    End(id="end", html="<p>Thanks</p>", completion_code="BROWSER"),
])
'''

BROKEN_GAME = '''
import sys

from game.games.pong import Pong


class Broken(Pong):
    """Fails in the browser only (like a game using something Pyodide lacks)."""

    def step(self, actions):
        if self.frame == 40 and sys.platform == "emscripten":
            raise ZeroDivisionError("the ball fell off the table")
        return super().step(actions)
'''


def start_server(folder: Path, max_frames: int, game: str = "game.games.pong:Pong", max_score: int = 1,
                 extra: tuple[str, ...] = (), grace_s: float = 15) -> Server:
    (folder / "broken_game.py").write_text(BROKEN_GAME)
    experiment = (PONG_EXPERIMENT.replace("MAX_FRAMES", str(max_frames)).replace("game.games.pong:Pong", game)
                  .replace('"max_score": 1', f'"max_score": {max_score}')
                  .replace('on_partner_drop="ai",', f'on_partner_drop="ai", grace_s={grace_s},'))
    (folder / "experiment.py").write_text(experiment)
    return Server(["serve", str(folder / "experiment.py"), *extra], folder / "data")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(["demo"], tmp_path_factory.mktemp("demo") / "data")
    yield server
    server.stop()


def checksums_of(state: dict[str, Any], match: str) -> list[str]:
    return [report["checksum"] for report in state["match"].get("checksums", []) if report["match"] == match]


def test_two_pages_play_the_demo_pong_match_and_the_recording_replays(browser: Any, demo: Server) -> None:
    pages = [open_participant(browser, demo.url, f"PROLIFIC_PID={pid()}&autopilot=1") for _ in range(2)]
    try:
        states = [p.wait_for(lambda s: len(s.get("match", {}).get("checksums", [])) >= 1, 150,
                             "the pong match to end") for p in pages]
        matches = {s["match"]["checksums"][0]["match"] for s in states}
        assert len(matches) == 1, "both pages should have played the same Pong match"
        [match] = matches
        done = [checksums_of(s, match) for s in states]
        assert done[0] == done[1] and len(done[0]) == 1
        assert all(s["worker"]["mode"] == "worker" and s["match"]["desyncs"] == 0 for s in states)
        assert all(s["disconnects"] == 0 for s in states)
        replayed = replay_recording(demo, "demo", match)
        assert replayed.ok and replayed.checked > 10, replayed
        recorded_end = [e for e in replayed_events(demo, match) if e["kind"] == "episode_end"]
        assert recorded_end and set(recorded_end[0]["data"]["checksums"].values()) == set(done[0])
        for page in pages:
            page.wait_for(lambda s: s.get("scene", {}).get("kind") == "end", 120, "the end page")
            assert page.page.locator("text=COPLAY-DEMO").count() >= 1
            assert page.console_errors == []
    finally:
        for page in pages:
            page.close()


def replayed_events(server: Server, match: str) -> list[dict[str, Any]]:
    return read_recording(str(server.data_dir / "demo" / "recordings" / f"{match}.jsonl")).events


def test_six_pages_start_three_matches_at_once_without_disconnects(browser: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path, max_frames=240)
    pages: list[Participant] = []
    try:
        pages = [open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1") for _ in range(6)]
        states = [p.wait_for(lambda s: s.get("scene", {}).get("kind") == "end", 180, "the end page") for p in pages]
        assert all(s["disconnects"] == 0 and s["worker"]["error"] is None for s in states)
        matches: dict[str, set[str]] = {}
        for state in states:
            for report in state["match"]["checksums"]:
                matches.setdefault(report["match"], set()).add(report["checksum"])
        assert len(matches) == 3 and all(len(c) == 1 for c in matches.values())
        starts = [s["pyodide"]["readyMs"] - s["pyodide"]["startMs"] for s in states]
        longest = max(max((t["ms"] for t in p.page.evaluate("window.__longTasks") or []), default=0) for p in pages)
        print(f"\nsix pages: Pyodide ready after {min(starts):.0f}-{max(starts):.0f} ms; "
              f"longest main-thread task during the run {longest:.0f} ms")
        assert longest < 1000
    finally:
        for page in pages:
            page.close()
        server.stop()


def test_added_latency_causes_rollbacks_and_the_match_still_converges(browser: Any, tmp_path: Path) -> None:
    # Chromium's network emulation does not delay WebSocket frames, so the relay adds the latency.
    server = start_server(tmp_path, max_frames=480, max_score=1000, extra=("--relay-delay-ms", "60"))
    pages: list[Participant] = []
    try:
        pages = [open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1") for _ in range(2)]
        states = [p.wait_for(lambda s: s.get("scene", {}).get("kind") == "end", 180, "the end page") for p in pages]
        [match] = {s["match"]["match"] for s in states}
        done = [checksums_of(s, match) for s in states]
        assert done[0] == done[1] and len(done[0]) == 1
        assert sum(s["match"]["rollbacks"] for s in states) > 20
        print(f"\nwith 60 ms added: rollbacks {[s['match']['rollbacks'] for s in states]}, "
              f"max depth {[s['match']['max_rollback_depth'] for s in states]}, ping {[s['match']['ping_ms'] for s in states]}")
        assert replay_recording(server, "browser", match).ok
        events = read_recording(str(server.data_dir / "browser" / "recordings" / f"{match}.jsonl")).events
        reports = {e["data"]["seat"]: e["data"]["players"] for e in events if e["kind"] == "predicted"}
        assert reports.keys() == {"s0", "s1"}, "each page's worker reports the frames it predicted"
        assert [sorted(reports[s]) for s in ("s0", "s1")] == [["right"], ["left"]]
        assert any(ranges for players in reports.values() for ranges in players.values())
    finally:
        for page in pages:
            page.close()
        server.stop()


def test_a_game_error_is_shown_logged_and_the_partner_goes_on(browser: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path, max_frames=240, game="broken_game.py:Broken")
    pages: list[Participant] = []
    partner = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=3)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(partner.run(120)))
    try:
        pages = [open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1")]
        thread.start()
        failed = pages[0].wait_for(lambda s: s.get("worker", {}).get("error"), 90, "the worker error")
        assert "ZeroDivisionError" in failed["worker"]["error"]
        assert pages[0].page.locator("text=the game stopped working").count() >= 1
        log = server.log_path
        pages[0].wait_for(lambda s: "ZeroDivisionError: the ball fell off the table" in log.read_text(), 30,
                          "the server log to show the error")
        assert re.search(r"participant \w+ reported an error in match \w+", log.read_text())
        assert any("ZeroDivisionError" in e for e in pages[0].console_errors)
        thread.join()
        [result] = results
        assert result.completed, result.reason   # the partner got an AI in the failed seat and finished
        told = [d for d in result.disconnects if d["source"] == "server"]
        assert [(d["status"], d["by"]) for d in told] == [("replaced", None)]   # at once, and the AI is not named
    finally:
        if thread.ident is not None:
            thread.join()
        for page in pages:
            page.close()
        server.stop()


def test_without_web_workers_the_game_runs_in_the_page(browser: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path, max_frames=240)
    pages: list[Participant] = []
    try:
        pages = [open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1"),
                 open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1",
                                  init_script="window.Worker = undefined;")]
        states = [p.wait_for(lambda s: s.get("scene", {}).get("kind") == "end", 180, "the end page") for p in pages]
        assert [s["worker"]["mode"] for s in states] == ["worker", "inline"]
        done = [{r["checksum"] for r in s["match"]["checksums"]} for s in states]
        assert done[0] == done[1] and len(done[0]) == 1
    finally:
        for page in pages:
            page.close()
        server.stop()


def test_a_single_player_match_in_the_browser_is_recorded_and_verifies(browser: Any, tmp_path: Path) -> None:
    """One page, no partner and no AI: its worker sends its inputs to the server, which records them
    with checksums (it used to record none: replay compared 0 checksums)."""
    (tmp_path / "solo_game.py").write_text(SOLO_GAME)
    (tmp_path / "experiment.py").write_text(SOLO_EXPERIMENT)
    server = Server(["serve", str(tmp_path / "experiment.py")], tmp_path / "data")
    pages: list[Participant] = []
    try:
        pages = [open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1")]
        state = pages[0].wait_for(lambda s: s.get("scene", {}).get("kind") == "end", 120, "the end page")
        assert state["worker"]["error"] is None and state["match"]["desyncs"] == 0
        [match] = {report["match"] for report in state["match"]["checksums"]}
        recording = read_recording(str(server.data_dir / "solo" / "recordings" / f"{match}.jsonl"))
        assert [len(recording.episodes[e]["inputs"]) >= 400 for e in (0, 1)] == [True, True]
        replayed = replay_recording(server, "solo", match)
        assert replayed.verdict == "ok" and replayed.frames == 800 and replayed.checked > 20, replayed
        assert not replayed.client_mismatches and pages[0].console_errors == []
    finally:
        for page in pages:
            page.close()
        server.stop()
