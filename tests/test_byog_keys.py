"""Issue 13, key combinations: `Match(keys={("ArrowUp", "ArrowLeft"): 5, "ArrowUp": 1, ...})`.

Checked at experiment load; sent to the page as "ArrowUp+ArrowLeft"; in the page (static/keymap.js) the held
combination with the most keys wins, then the one whose key was pressed last, then the one declared first.
The browser test holds two keys in real Chromium and reads the actions back from the match's recording."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.data.recording import read_recording
from game.loader import GameLoader
from scenes import ExperimentError, Match
from tests.browser_fixtures import open_participant
from tests.server_fixtures import ROOT, Server, pid

KEY_GAME = '''
from game.spaces import Discrete


class KeyEcho:
    """One player; the state is the action of the frame, drawn as text."""

    players = ("p",)
    action_space = Discrete(8)
    default_action = 0

    def __init__(self, config=None):
        self.frames = (config or {}).get("frames", 600)
        self.frame = 0
        self.last = 0

    def reset(self, seed):
        self.frame, self.last = 0, 0
        return {"p": self.last}

    def step(self, actions):
        self.frame += 1
        self.last = actions["p"]
        return {"observations": {"p": self.last}, "rewards": {"p": 0.0}, "terminated": self.frame >= self.frames,
                "truncated": False, "info": {}}

    def get_state(self):
        return {"frame": self.frame, "last": self.last}

    def set_state(self, state):
        self.frame, self.last = state["frame"], state["last"]

    def render(self):
        return [{"type": "viewport", "width": 200, "height": 100, "background": "#000"},
                {"type": "text", "x": 100, "y": 50, "text": str(self.last), "color": "#fff", "size": 30,
                 "align": "center"}]
'''

EXPERIMENT = '''
from scenes import End, Experiment, Match

EXPERIMENT = Experiment(id="keys", scenes=[
    Match(id="keys", game="key_echo.py:KeyEcho", humans=("p",), fps=60, config={"frames": 900},
          keys={("ArrowUp", "ArrowLeft"): 5, "ArrowUp": 1, "ArrowLeft": 3, ("ArrowLeft", "ArrowUp", "Shift"): 7}),
    End(id="end", html="<p>Thanks</p>"),
])
'''


def match(keys: Any) -> Match:
    return Match(id="m", game="game.games.pong:Pong", humans=("left", "right"), keys=keys)


# ----------------------------------------------------------------------------- the setting


def test_combinations_are_sent_as_names_joined_by_plus() -> None:
    scene = match({("ArrowUp", "ArrowLeft"): 2, "ArrowUp": 1, "+": 0, frozenset({"s", "a"}): 1})
    scene.check(GameLoader())
    keys = scene.to_client()["keys"]
    assert keys == {"ArrowUp+ArrowLeft": 2, "ArrowUp": 1, "+": 0, "a+s": 1}
    assert list(keys) == ["ArrowUp+ArrowLeft", "ArrowUp", "+", "a+s"]   # declaration order, for ties
    json.dumps(keys)


@pytest.mark.parametrize(("keys", "message"), [
    ({("a", "a"): 1}, "keys: ('a', 'a') names a key twice"),
    ({("a", "b"): 1, ("b", "a"): 2}, "keys: ('b', 'a') and ('a', 'b') are the same combination; keep one"),
    ({("a", "b", "c", "d", "e"): 1}, "combines 5 keys; at most 4 can be held together"),
    ({("a", "+"): 1}, "a key in it cannot be '+'"),
    ({("a", ""): 1}, "is not a key name"),
    ({("a", 3): 1}, "is not a key name (KeyboardEvent.key, e.g. 'ArrowUp' or 'w') or a tuple of them"),
    ({("ArrowUp", "ArrowLeft"): 9}, "keys[('ArrowUp', 'ArrowLeft')] = 9 is not an action of 'left'"),
])
def test_bad_combinations_are_refused_at_load(keys: Any, message: str) -> None:
    with pytest.raises(ExperimentError) as caught:
        match(keys).check(GameLoader())
    assert message in str(caught.value)


def test_the_key_map_picks_the_most_specific_then_the_latest_then_the_first() -> None:
    """static/keymap.js under Node, on held-key lists (most recently pressed last)."""
    script = """
    import {KeyMap} from "./static/keymap.js";
    const map = new KeyMap({"ArrowUp+ArrowLeft": 5, "ArrowUp": 1, "ArrowLeft": 3, "a+b": 8, "b+c": 9, "+": 4});
    const cases = [[], ["ArrowUp"], ["ArrowUp", "ArrowLeft"], ["ArrowLeft", "ArrowUp"], ["ArrowLeft"],
                   ["ArrowUp", "x", "ArrowLeft"], ["a", "b", "c"], ["c", "b", "a"], ["b", "a", "c"], ["+"]];
    console.log(JSON.stringify(cases.map((held) => map.action(held) ?? null)));
    console.log(JSON.stringify([map.bound({key: "ArrowLeft"}), map.bound({key: "B"}), map.bound({key: "z"})]));
    """
    if shutil.which("node") is None:
        pytest.fail("node is missing: run scripts/setup")
    done = subprocess.run(["node", "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    actions, bound = map(json.loads, done.stdout.splitlines())
    # a+b and b+c tie on size: the one holding the key pressed last wins; c,b,a: a+b (a last); b,a,c: b+c
    assert actions == [None, 1, 5, 5, 3, 5, 9, 8, 9, 4]
    assert bound == ["ArrowLeft", "b", None]


# ----------------------------------------------------------------------------- in the browser


def runs(actions: list[int]) -> list[int]:
    """The actions with repeats collapsed: [0, 0, 1, 1, 5] -> [0, 1, 5]."""
    return [a for i, a in enumerate(actions) if i == 0 or actions[i - 1] != a]


def test_holding_two_keys_plays_their_combination(browser: Any, tmp_path: Path) -> None:
    (tmp_path / "key_echo.py").write_text(KEY_GAME)
    (tmp_path / "experiment.py").write_text(EXPERIMENT)
    server = Server(["serve", str(tmp_path / "experiment.py")], tmp_path / "data")
    page = open_participant(browser, server.url, f"PROLIFIC_PID={pid()}")
    try:
        page.wait_for(lambda s: s.get("match", {}).get("frame", 0) > 30, 120, "the match to run")
        keyboard = page.page.keyboard
        for step in (lambda: keyboard.down("ArrowUp"), lambda: keyboard.down("ArrowLeft"),
                     lambda: keyboard.up("ArrowUp"), lambda: keyboard.down("ArrowUp"),
                     lambda: keyboard.up("ArrowLeft"), lambda: keyboard.up("ArrowUp")):
            step()
            page.page.wait_for_timeout(400)
        state = page.wait_for(lambda s: s.get("scene", {}).get("kind") == "end", 120, "the end page")
        assert state["worker"]["error"] is None
        [match_id] = {report["match"] for report in state["match"]["checksums"]}
        recording = read_recording(str(server.data_dir / "keys" / "recordings" / f"{match_id}.jsonl"))
        played = runs([frame[0] for frame in recording.episodes[0]["inputs"]])
        # up: 1; up+left: 5; left alone: 3; left then up again: 5; up alone: 1; nothing: 0
        assert played == [0, 1, 5, 3, 5, 1, 0], played
        assert page.console_errors == []
    finally:
        page.close()
        server.stop()
