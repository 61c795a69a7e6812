"""`coplay play` in CPython: the bench (netcode/playground.py) through worker_glue.play as the page calls it,
its recording records written by the play server's recorder and verified by replay, the key maps and
the import check."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from app.analysis.replay import replay
from app.commands.play import DEFAULT_KEY_SETS, PlayError, build_setup, check_host, default_keys, human_keys
from app.data.recording import read_recording
from app.pyodide.imports import missing_imports
from app.web.play import PlayRecorder, RecordError
from game.games.pong import Pong
from game.spaces import Box, Discrete
from netcode import worker_glue
from netcode.playground import PlayError as BenchError
from netcode.playground import Playground

PONG = "game.games.pong:Pong"
TRACKER = "game.games.policies:PongTracker"


def call(**fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(worker_glue.play(json.dumps(fields)))
    return answer


@pytest.fixture(autouse=True)
def fresh_glue() -> Any:
    yield
    worker_glue.terminate()


def test_run_steps_exactly_the_frames_asked_and_a_seed_replays_the_same_episode() -> None:
    first = call(op="start", game=PONG, config={"max_frames": 300}, seed=5, ai={})
    assert first["frame"] == 0 and first["episode"] == 0 and first["primitives"]
    assert call(op="run", frames=7, actions={"left": 1})["frame"] == 7
    stepped = call(op="run", frames=1, actions={}, draw=False)
    assert stepped["frame"] == 8 and "primitives" not in stepped
    moved = stepped["players"]["left"]["observation"]["paddle"]
    assert moved < first["players"]["left"]["observation"]["paddle"], "up (1) moves the left paddle up"
    again = call(op="reset", seed=5)
    assert (again["frame"], again["episode"], again["seed"]) == (0, 1, 5)
    assert again["players"] == first["players"] and again["checksum"] == first["checksum"]
    other = call(op="reset", seed=6)
    assert other["checksum"] != first["checksum"]


def test_an_ai_player_is_played_by_its_policy_and_the_episode_stops_at_its_end() -> None:
    call(op="start", game=PONG, config={"max_frames": 200}, seed=1, ai={"right": TRACKER})
    view = call(op="run", frames=64, actions={})
    view = call(op="run", frames=64, actions={})
    assert view["players"]["right"]["ai"] and not view["players"]["left"]["ai"]
    assert view["players"]["right"]["observation"]["paddle"] != 300, "the tracker moved its paddle"
    view = call(op="run", frames=64, actions={})
    view = call(op="run", frames=64, actions={})
    assert view["frame"] == 200 and view["truncated"] and not view["terminated"]
    assert call(op="run", frames=10, actions={})["frame"] == 200, "nothing steps past the episode's end"


def test_bad_calls_are_refused_and_change_nothing() -> None:
    with pytest.raises(RuntimeError, match="start first"):
        call(op="run", frames=1, actions={})
    call(op="start", game=PONG, config={}, seed=0, ai={"right": "game.policies:IdlePolicy"})
    with pytest.raises(BenchError, match="not an action of 'left'"):
        call(op="run", frames=1, actions={"left": 9})
    with pytest.raises(BenchError, match="not a human player"):
        call(op="run", frames=1, actions={"right": 1})
    with pytest.raises(BenchError, match="frames must be"):
        call(op="run", frames=1000, actions={})
    with pytest.raises(BenchError, match="seed"):
        call(op="reset", seed=-1)
    with pytest.raises(ValueError, match="unknown PLAY op"):
        call(op="jump")
    assert call(op="run", frames=0, actions={})["frame"] == 0


def test_a_policy_that_cannot_be_imported_says_which_player_and_what_to_do() -> None:
    with pytest.raises(Exception, match="the policy of 'right' .* cannot run in the browser"):
        call(op="start", game=PONG, config={}, seed=0, ai={"right": "no_such_module_xyz:Policy"})


def test_every_episode_gets_a_fresh_env_as_matches_and_replays_do() -> None:
    class Leaky(Pong):
        """Its reset forgets to clear a counter that is part of its state."""

        resets = 0

        def reset(self, seed: int) -> dict:
            self.resets += 1
            return super().reset(seed)

        def get_state(self) -> dict:
            return {**super().get_state(), "resets": self.resets}

    bench = Playground(Leaky, {}, 5)
    first = bench.checksum()
    bench.run(3, {})
    bench.reset(5)
    assert bench.checksum() == first and bench.episode == 1


def test_an_invalid_ai_action_names_the_policy() -> None:
    class Wild:
        def act(self, observation: Any) -> int:
            return 7

    bench = Playground(Pong, {}, 0, {"right": Wild})
    with pytest.raises(BenchError, match="policy Wild playing 'right' chose an invalid action"):
        bench.run(1, {})


def test_records_written_by_the_play_recorder_replay_with_every_checksum(tmp_path: Path) -> None:
    setup = build_setup(args(PONG, "--ai", f"right={TRACKER}", "--record", "--data", str(tmp_path),
                             "--config", '{"max_frames": 100}'))
    recorder = PlayRecorder(setup)
    bench = Playground(Pong, setup.config, 3, {"right": PongTrackerClass()}, record=True)
    bench.run(40, {"left": 2})
    path = recorder.write("abcdefgh-1", bench.take_records())
    bench.reset(9)                  # mid-episode: the first episode ends where it is
    bench.run(64, {"left": 1})
    bench.run(64, {})
    recorder.write("abcdefgh-1", bench.take_records())
    recorder.close()
    recording = read_recording(path)
    assert recording.players == ["left", "right"] and sorted(recording.episodes) == [0, 1]
    assert [len(e["inputs"]) for e in recording.episodes.values()] == [40, 100]
    assert recording.header["seats"]["s1"] == {"players": ["right"], "kind": "ai", "participant": None,
                                               "policy": TRACKER}
    result = replay(path)
    assert result.passed and result.frames == 140 and result.checked >= 2 + 40 // 16 + 100 // 16
    assert Path(path).parent == tmp_path / "play" / "recordings"


def test_the_recorder_refuses_bad_records_and_writes_nothing_for_them(tmp_path: Path) -> None:
    recorder = PlayRecorder(build_setup(args(PONG, "--record", "--data", str(tmp_path))))
    for session, records, message in [
        ("short", [], "session must be"),
        ("abcdefgh", {"type": "episode"}, "must be a list"),
        ("abcdefgh", [{"type": "header", "match": "x"}], "not a recording record"),
        ("abcdefgh", [{"type": "inputs", "episode": 0, "frame": "1", "actions": []}], "needs frame"),
        ("abcdefgh", [{"type": "event", "episode": 0, "frame": 1, "kind": "match_end", "data": {}}],
         "only episode_end"),
    ]:
        with pytest.raises(RecordError, match=message):
            recorder.write(session, records)
    assert not (tmp_path / "play").exists()
    with pytest.raises(RecordError, match="skips frames"):
        recorder.write("abcdefgh", [{"type": "episode", "episode": 0, "seed": 1},
                                    {"type": "inputs", "episode": 0, "frame": 3, "actions": [0, 0]}])


def PongTrackerClass() -> type:
    from game.games.policies import PongTracker
    return PongTracker


def args(*argv: str) -> argparse.Namespace:
    from app.commands.play import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["play", *argv])


def test_keys_default_to_arrows_then_wasd_on_discrete_actions_and_are_checked() -> None:
    env = Pong({})
    keys = human_keys(env, ["left", "right"], {})
    assert keys == {"left": {"ArrowUp": 1, "ArrowDown": 2}, "right": {"w": 1, "s": 2}}
    assert default_keys(Discrete(6, start=10), 0) == {k: 11 + i for i, k in enumerate(DEFAULT_KEY_SETS[0])}
    assert default_keys(Box(0, 1, (2,)), 0) == {}
    assert human_keys(env, ["left"], {"left": '{"q": 2}'}) == {"left": {"q": 2}}
    with pytest.raises(PlayError, match="is not an action"):
        human_keys(env, ["left"], {"left": '{"q": 5}'})
    with pytest.raises(PlayError, match="bound for both"):
        human_keys(env, ["left", "right"], {"right": '{"ArrowUp": 1}'})
    with pytest.raises(PlayError, match="not JSON"):
        human_keys(env, ["left"], {"left": "{q: 1}"})


def test_the_game_may_name_its_own_keys_per_player() -> None:
    class Keyed(Pong):
        keys = {"left": {"q": 1, "a": 2}, "right": {"p": 1, "l": 2}}

    assert human_keys(Keyed({}), ["left", "right"], {}) == Keyed.keys


def test_only_loopback_hosts_unless_allowed() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        check_host(host, False)
    with pytest.raises(PlayError, match="--allow-remote"):
        check_host("0.0.0.0", False)
    check_host("0.0.0.0", True)


def test_missing_imports_follow_module_level_imports_through_the_bundle() -> None:
    bundle = {"paths": [".", "user/0"], "files": {
        "game/__init__.py": "",
        "user/0/mygame.py": "import json\nfrom helpers import util\nfrom game import spaces\n",
        "user/0/helpers/__init__.py": "from .util import f\n",
        "user/0/helpers/util.py": "import numpy as np\ntry:\n    import torch\nexcept ImportError:\n    pass\n"
                                  "def f():\n    import scipy\n",
        "user/0/unused.py": "import tensorflow\n",
    }}
    assert missing_imports(bundle, "mygame") == {"numpy": "helpers.util"}
    assert missing_imports(bundle, "unused") == {"tensorflow": "unused"}


SEEDS_WALKER = '''
import random


class Walker:
    """A seeds-style game: Environment(config), reset() -> state, step(action) -> {state, reward, done}."""

    action_space = 3
    default_action = 1

    def __init__(self, config):
        self.rng = random.Random(config.get("seed", 0))
        self.x = self.t = 0

    def reset(self):
        self.x, self.t = self.rng.randint(0, 10), 0
        return [self.x, self.t]

    def step(self, action):
        self.x += action - 1
        self.t += 1
        return {"state": [self.x, self.t], "reward": float(self.x), "done": self.t >= 500}
'''


def test_a_seeds_game_is_bundled_from_its_file_and_loaded_through_the_adapter(tmp_path: Path) -> None:
    (tmp_path / "walker.py").write_text(SEEDS_WALKER)
    setup = build_setup(args(f"seeds:{tmp_path / 'walker.py'}:Walker"))
    bundle = json.loads(setup.bundle.body)
    assert setup.worker_game == "seeds:walker:Walker" and bundle["files"]["user/0/walker.py"] == SEEDS_WALKER
    assert setup.players == ["player"] and setup.keys == {"player": {"ArrowUp": 1, "ArrowDown": 2}}
    assert setup.game == f"seeds:{tmp_path / 'walker.py'}:Walker"
