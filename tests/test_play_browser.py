"""`coplay play` in real headless Chromium: the page runs the game in the Pyodide worker, keys move
players, the inspector follows, pause / step / reset with a seed behave exactly, an AI seat plays in the
worker, and `--record` writes a recording that `coplay replay` verifies."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.data.recording import read_recording
from tests.browser_fixtures import Participant, open_participant
from tests.server_fixtures import ROOT, Server
from tests.test_browser_csp import VIOLATIONS_SCRIPT

PONG = "game.games.pong:Pong"
TRACKER = "game.games.policies:PongTracker"
LOAD_TIMEOUT = 120
LAZY_NUMPY_POLICY = '''
class Policy:
    """Imports numpy only when it first acts (the CLI's import check cannot see it)."""

    def act(self, observation):
        import numpy
        return int(numpy.int64(0))
'''


def open_play(browser: Any, server: Server) -> Participant:
    page = open_participant(browser, server.url, "", init_script=VIOLATIONS_SCRIPT)
    page.wait_for(lambda s: s.get("play", {}).get("started") or s.get("worker", {}).get("error"), LOAD_TIMEOUT,
                  "the play page to start the game")
    return page


def play_state(page: Participant) -> dict[str, Any]:
    state: dict[str, Any] = page.coplay()["play"]
    return state


def wait_frames(page: Participant, at_least: int) -> dict[str, Any]:
    return page.wait_for(lambda s: s["play"]["frame"] >= at_least, 30, f"frame {at_least}")["play"]


def pause(page: Participant) -> int:
    page.page.click("#pause")
    page.page.wait_for_timeout(400)   # a run already asked for may still land
    frame: int = play_state(page)["frame"]
    return frame


def reset(page: Participant, seed: int) -> dict[str, Any]:
    episode = play_state(page)["episode"]   # a reset starts the next episode: wait for it, not an older state
    page.page.fill("#seed", str(seed))
    page.page.click("#reset")
    return page.wait_for(lambda s: s["play"]["episode"] > episode and s["play"]["seed"] == seed
                         and s["play"]["frame"] <= 2, 20, f"the reset with seed {seed}")["play"]


@pytest.fixture(scope="module")
def pong(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(["play", PONG, "--config", '{"max_frames": 100000}'], tmp_path_factory.mktemp("play") / "data")
    yield server
    server.stop()


def test_keys_move_both_players_and_pause_step_and_reset_are_exact(browser: Any, pong: Server) -> None:
    page = open_play(browser, pong)
    try:
        assert page.coplay()["worker"]["mode"] == "worker" and page.coplay()["worker"]["error"] is None
        start = wait_frames(page, 30)
        paddles = {p: start["players"][p]["observation"]["paddle"] for p in ("left", "right")}
        page.page.keyboard.down("ArrowUp")
        page.page.keyboard.down("w")
        page.page.wait_for_timeout(500)
        page.page.keyboard.up("ArrowUp")
        page.page.keyboard.up("w")
        moved = play_state(page)
        assert moved["frame"] > start["frame"]
        for player in ("left", "right"):
            assert moved["players"][player]["observation"]["paddle"] < paddles[player], f"{player} moved up"
        page.page.wait_for_timeout(300)
        assert int(page.page.inner_text("#i-frame")) > start["frame"], "the inspector follows the frames"

        frame = pause(page)
        page.page.wait_for_timeout(500)
        assert play_state(page)["frame"] == frame, "paused: no frame runs"
        assert page.page.inner_text("#i-frame") == str(frame)
        page.page.click("#step")
        stepped = page.wait_for(lambda s: s["play"]["frame"] != frame, 10, "one step")["play"]
        assert stepped["frame"] == frame + 1
        page.page.wait_for_timeout(300)
        assert page.page.inner_text("#i-frame") == str(frame + 1)
        assert page.page.inner_text("#i-checksum") == stepped["checksum"]

        first = reset(page, 42)
        assert (first["frame"], first["seed"]) == (0, 42) and first["episode"] == 1, "paused: the reset does not run"
        page.page.click("#step")
        page.wait_for(lambda s: s["play"]["frame"] == 1, 10, "a step after the reset")
        again = reset(page, 42)
        assert again["players"] == first["players"] and again["checksum"] == first["checksum"]
        other = reset(page, 43)
        assert other["checksum"] != first["checksum"]
        assert page.page.inner_text("#i-seed") == "43" and page.page.inner_text("#i-frame") == "0"

        page.page.click("#pause")   # resume
        resumed = wait_frames(page, 20)
        assert not resumed["paused"] and resumed["seed"] == 43
        assert page.console_errors == [] and page.page.evaluate("() => window.__cspViolations") == []
    finally:
        page.close()


def test_an_ai_seat_plays_in_the_worker(browser: Any, tmp_path: Path) -> None:
    server = Server(["play", PONG, "--ai", f"right={TRACKER}"], tmp_path / "data")
    page = open_play(browser, server)
    try:
        state = wait_frames(page, 200)
        right = state["players"]["right"]
        assert right["ai"] and not state["players"]["left"]["ai"]
        assert right["observation"]["paddle"] != 300, "the tracker moved its paddle from the middle"
        assert f"AI: {TRACKER}" in page.page.inner_text("#seats")
        frames = {}
        for speed in ("0.25", "4"):
            page.page.select_option("#speed", speed)
            page.page.wait_for_timeout(300)
            before = play_state(page)["frame"]
            page.page.wait_for_timeout(2000)
            frames[speed] = play_state(page)["frame"] - before
        # 15 against 240 frames a second asked for: a wide margin for a busy machine.
        assert 10 <= frames["0.25"] <= 60 and frames["4"] > 4 * frames["0.25"], frames
        assert page.coplay()["record"]["sent"] == 0
    finally:
        page.close()
        server.stop()
    assert not (tmp_path / "data" / "play").exists(), "nothing is recorded without --record"


def test_a_policy_failing_in_the_browser_shows_the_error_on_the_page(browser: Any, tmp_path: Path) -> None:
    (tmp_path / "lazy_policy.py").write_text(LAZY_NUMPY_POLICY)
    server = Server(["play", PONG, "--ai", f"right={tmp_path / 'lazy_policy.py'}:Policy"], tmp_path / "data")
    page = open_play(browser, server)
    try:
        state = page.wait_for(lambda s: s["worker"]["error"], 30, "the policy's error")
        assert "No module named 'numpy'" in state["worker"]["error"]
        assert "No module named 'numpy'" in page.page.inner_text("#status")
    finally:
        page.close()
        server.stop()


def test_record_writes_a_recording_that_coplay_replay_verifies(browser: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(["play", PONG, "--ai", f"right={TRACKER}", "--record", "--config", '{"max_frames": 400}'],
                    data)
    page = open_play(browser, server)
    try:
        page.page.keyboard.down("ArrowDown")
        wait_frames(page, 90)
        page.page.keyboard.up("ArrowDown")
        frame = pause(page)
        page.page.click("#step")
        page.wait_for(lambda s: s["play"]["frame"] == frame + 1, 10, "one step")
        reset(page, 7)
        page.page.click("#pause")   # resume
        page.wait_for(lambda s: s["play"]["truncated"], 60, "the second episode's end (400 frames)")
        page.wait_for(lambda s: s["play"]["truncated"] and s["record"]["sent"] == s["record"]["queued"] > 0, 30,
                      "every record posted")
        assert page.coplay()["record"]["error"] is None
    finally:
        page.close()
        server.stop()
    [path] = (data / "play" / "recordings").iterdir()
    recording = read_recording(str(path))
    assert sorted(recording.episodes) == [0, 1]
    assert [len(recording.episodes[e]["inputs"]) for e in (0, 1)] == [frame + 1, 400]
    assert recording.episodes[1]["seed"] == 7 and recording.end_reason == "completed"
    result = subprocess.run([sys.executable, "-m", "app.cli", "replay", str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "ok: every checksum matches" in result.stdout, result


def test_a_seeds_style_game_plays_in_the_browser(browser: Any, tmp_path: Path) -> None:
    from tests.test_play_glue import SEEDS_WALKER

    (tmp_path / "walker.py").write_text(SEEDS_WALKER)
    server = Server(["play", f"seeds:{tmp_path / 'walker.py'}:Walker"], tmp_path / "data")
    page = open_play(browser, server)
    try:
        start = wait_frames(page, 10)["players"]["player"]["observation"]
        page.page.keyboard.down("ArrowDown")   # action 2: x + 1 a frame
        page.page.wait_for_timeout(400)
        page.page.keyboard.up("ArrowDown")
        frame = pause(page)
        x, t = play_state(page)["players"]["player"]["observation"]
        assert t == frame and x > start[0], "the walker walked right while ArrowDown was held"
        assert page.console_errors == []
    finally:
        page.close()
        server.stop()
