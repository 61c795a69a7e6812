"""The replay viewer (/replay, behind the admin token) against the real server with a really
recorded match: HTTP access control, frames equal to a direct CPython re-simulation, parameter
errors, and the page itself in headless Chromium."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from app.participant.headless import HeadlessParticipant
from app.data.recording import read_recording
from app.analysis.replay import episode_lengths
from game.games.pong import Pong
from tests.server_fixtures import Server, pid, run_together

MAX_FRAMES = 400
EXPERIMENT = f'''
from scenes import Consent, End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="replays", scenes=[
    Consent(id="consent", markdown="Agree?"),
    Match(id="pong", game="game.games.pong:Pong", config={{"max_score": 1000, "max_frames": {MAX_FRAMES}}},
          humans=("left", "right"), episodes=2, fps=60,
          waiting_room=WaitingRoom(timeout_s=30, on_timeout="ai"), on_partner_drop="ai", fill_policy="random"),
    End(id="end", html="<p>Thanks</p>", completion_code="REPLAY"),
])
'''


class Recorded:
    def __init__(self, server: Server, match: str) -> None:
        self.server = server
        self.match = match
        self.url = server.url
        self.dir = server.data_dir / "replays"
        self.token = (self.dir / "admin_token").read_text().strip()
        self.recording = read_recording(str(self.dir / "recordings" / f"{match}.jsonl"))

    def get(self, path: str, token: str | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return requests.get(self.url + path, params=params, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    folder = tmp_path_factory.mktemp("replays")
    (folder / "experiment.py").write_text(EXPERIMENT)
    server = Server(["serve", str(folder / "experiment.py")], folder / "data", env={"COPLAY_ADMIN_TOKEN": ""})
    try:
        players = [HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=seed) for seed in (1, 2)]
        results = run_together(players, timeout=90)
        assert all(r.completed for r in results), [r.reason for r in results]
        yield Recorded(server, results[0].matches[0]["match"])
    finally:
        server.stop()


def direct_frames(recording: Any, episode: int) -> list[dict[str, Any]]:
    """Frames as a plain CPython re-simulation of the recording gives them."""
    data = recording.episodes[episode]
    length = episode_lengths(recording)[episode]
    env = Pong(recording.header["config"])
    env.reset(data["seed"])
    out = []
    for frame in range(length + 1):
        entry: dict[str, Any] = {"frame": frame, "primitives": env.render(), "actions": None, "rewards": None}
        if frame < length:
            entry["actions"] = dict(zip(recording.players, data["inputs"][frame]))
            entry["rewards"] = env.step(dict(entry["actions"]))["rewards"]
        out.append(json.loads(json.dumps(entry)))
    return out


# ----------------------------------------------------------------------------- access


def test_without_or_with_a_wrong_token_every_route_answers_401(recorded: Recorded) -> None:
    routes = ["/replay", f"/replay/{recorded.match}", f"/replay/{recorded.match}/episodes.json",
              f"/replay/{recorded.match}/frames.json?episode=0&start=0"]
    wrong = recorded.token[:-2] + ("aa" if not recorded.token.endswith("aa") else "bb")
    for route in routes:
        for kwargs in ({}, {"params": {"token": wrong}}, {"headers": {"Authorization": f"Bearer {wrong}"}},
                       {"headers": {"Authorization": recorded.token}}):
            response = requests.get(recorded.url + route, timeout=10, **kwargs)
            assert response.status_code == 401, (route, kwargs)
            assert "admin token required: pass ?token=" in response.text
            assert "DATA/replays/admin_token or COPLAY_ADMIN_TOKEN" in response.text
            assert recorded.token not in response.text
            if route.endswith("=0") or route.endswith(".json"):
                assert response.json()["error"].startswith("admin token required")


def test_bearer_and_query_tokens_are_accepted_and_a_query_token_opens_a_session(recorded: Recorded) -> None:
    listing = recorded.get("/replay")
    assert listing.status_code == 200 and f'href="/replay/{recorded.match}"' in listing.text
    assert "<td>pong</td>" in listing.text and "completed" in listing.text and "<td>2</td>" in listing.text
    page = recorded.get(f"/replay/{recorded.match}")
    assert page.status_code == 200 and "/static/replay.js" in page.text and "/static/style.css" in page.text
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    browser = requests.Session()
    assert browser.get(f"{recorded.url}/replay/{recorded.match}", params={"token": recorded.token},
                       timeout=10).status_code == 200
    assert browser.get(f"{recorded.url}/replay/{recorded.match}/episodes.json", timeout=30).status_code == 200
    assert browser.get(f"{recorded.url}/replay", timeout=10).status_code == 200
    assert requests.get(f"{recorded.url}/replay", timeout=10).status_code == 401   # no cookie, no token


def test_the_server_says_where_the_viewer_and_token_are_without_printing_it(recorded: Recorded) -> None:
    log = recorded.server.log_path.read_text()
    assert (f"replay viewer at http://127.0.0.1:{recorded.server.port}/replay; the admin token is in "
            f"{recorded.dir / 'admin_token'}") in log
    assert recorded.token not in log


# ----------------------------------------------------------------------------- data


def test_episodes_json_describes_every_episode(recorded: Recorded) -> None:
    body = recorded.get(f"/replay/{recorded.match}/episodes.json").json()
    lengths = episode_lengths(recorded.recording)
    assert body["match"] == recorded.match and body["scene"] == "pong" and body["fps"] == 60
    assert body["players"] == ["left", "right"] and body["truncated"] is False and body["ended"] is True
    assert [e["episode"] for e in body["episodes"]] == [0, 1]
    for entry in body["episodes"]:
        episode = entry["episode"]
        assert entry["frames"] == lengths[episode] and entry["states"] == lengths[episode] + 1
        assert entry["seed"] == recorded.recording.episodes[episode]["seed"]
        assert entry["fps"] == 60 and entry["players"] == ["left", "right"]
        assert entry["verified"] is True and entry["checksums"]["mismatches"] == 0
        assert entry["checksums"]["checked"] == entry["checksums"]["recorded"] > 0


def test_frames_equal_a_direct_cpython_resimulation(recorded: Recorded) -> None:
    for episode in (0, 1):
        expected = direct_frames(recorded.recording, episode)
        got: list[dict[str, Any]] = []
        start = 0
        while start < len(expected):
            chunk = recorded.get(f"/replay/{recorded.match}/frames.json", episode=episode, start=start,
                                 count=150).json()
            assert chunk["start"] == start and chunk["count"] == min(150, len(expected) - start)
            assert chunk["states"] == len(expected) and len(chunk["frames"]) == chunk["count"]
            got += chunk["frames"]
            start += 150
        assert [{k: f[k] for k in ("frame", "primitives", "actions", "rewards")} for f in got] == expected
        checked = [f["checksum"] for f in got if f["checksum"] is not None]
        assert checked and all(c["ok"] and set(c["recorded"].values()) == {c["replayed"]} for c in checked)
    middle = recorded.get(f"/replay/{recorded.match}/frames.json", episode=0, start=37, count=3).json()
    assert [f["frame"] for f in middle["frames"]] == [37, 38, 39]


def test_a_checksum_that_does_not_match_is_marked(recorded: Recorded, tmp_path: Path) -> None:
    source = recorded.dir / "recordings" / f"{recorded.match}.jsonl"
    lines = source.read_text().splitlines()
    bad_frame = None
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record.get("type") == "checksum" and record["episode"] == 0 and record["frame"] > 0 \
                and record["seat"] == "server":   # the server's checksums decide (seats' are only listed)
            record["checksum"] = "0" * 64
            lines[index], bad_frame = json.dumps(record, separators=(",", ":")), record["frame"]
            break
    assert bad_frame is not None
    altered = recorded.dir / "recordings" / "altered-copy.jsonl"
    altered.write_text("\n".join(lines) + "\n")
    try:
        body = recorded.get("/replay/altered-copy/episodes.json").json()
        assert body["episodes"][0]["verified"] is False and body["episodes"][0]["checksums"]["first_mismatch"] == bad_frame
        frame = recorded.get("/replay/altered-copy/frames.json", episode=0, start=bad_frame, count=1).json()["frames"][0]
        assert frame["checksum"]["ok"] is False and "0" * 64 in frame["checksum"]["recorded"].values()
    finally:
        altered.unlink()


@pytest.mark.parametrize(("query", "message"), [
    ({"start": 0}, "the query parameter 'episode' is required"),
    ({"episode": 0}, "the query parameter 'start' is required"),
    ({"episode": "x", "start": 0}, "episode must be an integer, got 'x'"),
    ({"episode": 0, "start": "1.5"}, "start must be an integer"),
    ({"episode": -1, "start": 0}, "episode must be at least 0, got -1"),
    ({"episode": 0, "start": 0, "count": 0}, "count must be between 1 and 600, got 0"),
    ({"episode": 0, "start": 0, "count": 601}, "count must be between 1 and 600, got 601"),
    ({"episode": 0, "start": 99999}, "start must be between 0 and"),
])
def test_bad_parameters_get_400_with_a_message(recorded: Recorded, query: dict[str, Any], message: str) -> None:
    response = recorded.get(f"/replay/{recorded.match}/frames.json", **query)
    assert response.status_code == 400 and message in response.json()["error"], response.text


def test_unknown_matches_episodes_and_path_like_ids_get_404(recorded: Recorded) -> None:
    assert recorded.get(f"/replay/{recorded.match}/frames.json", episode=7, start=0).status_code == 404
    # (a literal ".." would be resolved by the HTTP client itself, so the server sees it encoded)
    for match in ("nope", "coplay", "secret_key", "%2e%2e", "..%2fsecret_key", "%2e%2e%2fadmin_token",
                  ".hidden", "a%00b", "x" * 200):
        for suffix in ("", "/episodes.json", "/frames.json?episode=0&start=0"):
            response = recorded.get(f"/replay/{match}{suffix}")
            assert response.status_code == 404, (match, suffix, response.status_code)
            assert recorded.token not in response.text and "secret" not in response.text.replace(match, "")


# ----------------------------------------------------------------------------- the page


def test_the_viewer_plays_pauses_steps_seeks_and_changes_speed(browser: Any, recorded: Recorded) -> None:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{recorded.url}/replay/{recorded.match}?token={recorded.token}")

        def replay_state() -> dict[str, Any]:
            return page.evaluate("() => ({...window.coplayReplay})")

        page.wait_for_function("() => window.coplayReplay && window.coplayReplay.loadedFrames > 0", timeout=30_000)
        assert "token" not in page.url
        state = replay_state()
        assert state["episode"] == 0 and state["frame"] == 0 and state["playing"] is False and state["drawn"] >= 1
        page.keyboard.press("Space")
        page.wait_for_function("() => window.coplayReplay.frame >= 30", timeout=15_000)
        assert replay_state()["playing"] is True
        page.keyboard.press("Space")
        paused = replay_state()
        assert paused["playing"] is False
        page.wait_for_timeout(300)
        assert replay_state()["frame"] == paused["frame"]
        page.keyboard.press("ArrowRight")
        assert replay_state()["frame"] == paused["frame"] + 1
        page.click("#back")
        page.click("#back")
        assert replay_state()["frame"] == paused["frame"] - 1
        page.locator("#seek").fill("350")     # beyond the first chunk: loads the next one
        page.wait_for_function("() => window.coplayReplay.frame === 350 && window.coplayReplay.loadedFrames > 300",
                               timeout=15_000)
        assert page.locator("#counter").inner_text().startswith("frame 350 / ")
        page.select_option("#speed", "4")
        page.locator("#seek").fill("0")
        page.click("#play")
        page.wait_for_timeout(1000)
        fast = replay_state()
        assert fast["speed"] == 4 and fast["playing"] is True and fast["frame"] > 120   # 4 x 60 fps for 1 s
        page.click("#play")
        page.select_option("#episode", "1")
        page.wait_for_function("() => window.coplayReplay.episode === 1 && window.coplayReplay.loadedFrames > 0",
                               timeout=15_000)
        assert replay_state()["frame"] == 0
        colours = page.evaluate("""() => {
            const canvas = document.getElementById("canvas");
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            const seen = new Set();
            for (let i = 0; i < data.length; i += 16) seen.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
            return seen.size;
        }""")
        assert colours >= 2, "the canvas should show the game, not one flat colour"
        assert page.locator("#actions tr").count() == 2
        assert errors == []
    finally:
        context.close()
