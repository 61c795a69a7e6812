"""Issue 13, whole bundles everywhere: a game of several files in sub-packages, and a seeds: game, reach
Pyodide (check-env, replay) through the browser bundle, and a recording stores the whole source tree so
`replay --recorded-source` needs nothing else, long after the files changed or went away."""
from __future__ import annotations

import inspect
import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from app.analysis.replay import class_from_tree, recorded_game, replay
from app.cli import main
from app.data.recording import RecordingWriter, make_header, read_recording
from app.pyodide.bundle import game_bundle, game_tree
from game.adapters.seeds import SeedsEnv
from game.hashing import state_hash
from game.loader import load_class
from tests import adapter_games
from tests.browser_fixtures import open_participant
from tests.server_fixtures import Server, pid

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH, so Pyodide cannot run")

GAME = '''
from game.spaces import Discrete
from rules.moves import STEP
from rules.deep.limits import LIMIT


class Walker:
    players = ("p",)
    action_space = Discrete(3)
    default_action = 0

    def __init__(self, config=None):
        self.t = 0

    def reset(self, seed):
        self.t = seed % 5
        return {"p": self.t}

    def step(self, actions):
        self.t = (self.t + STEP * actions["p"] + 1) % LIMIT
        return {"observations": {"p": self.t}, "rewards": {"p": 1.0}, "terminated": False, "truncated": False,
                "info": {}}

    def get_state(self):
        return {"t": self.t}

    def set_state(self, state):
        self.t = state["t"]
'''


def write_walker(folder: Path, step: int = 3) -> str:
    """A game whose rules live in a package with a sub-package: `rules/moves.py`, `rules/deep/limits.py`."""
    (folder / "rules" / "deep").mkdir(parents=True)
    (folder / "walker.py").write_text(GAME)
    (folder / "rules" / "__init__.py").write_text("")
    (folder / "rules" / "moves.py").write_text(f"STEP = {step}\n")
    (folder / "rules" / "deep" / "__init__.py").write_text("")
    (folder / "rules" / "deep" / "limits.py").write_text("LIMIT = 1000\n")
    return f"{folder / 'walker.py'}:Walker"


def write_seeds_cartpole(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    source = "import random\nfrom typing import Any\n\n\n" + inspect.getsource(adapter_games.SeedsCartPole)
    (folder / "seeds_cart.py").write_text(source)
    return f"seeds:{folder / 'seeds_cart.py'}:SeedsCartPole"


def record(path: Path, spec: str, cls: type, frames: int = 120, seed: int = 7) -> None:
    """A recording as the server writes one (header by make_header, checksums every 10 frames)."""
    header = make_header(match="m1", experiment="x", scene="s", created_at="now", game=spec,
                         game_source="# the entry module's text", config={}, players=["p"]
                         if cls.__name__ == "Walker" else ["player"], seats={}, netcode={}, fps=60)
    env = cls({})
    player = header["players"][0]
    env.reset(seed)
    with RecordingWriter(str(path), header) as writer:
        writer.episode(0, seed)
        for frame in range(frames):
            if frame % 10 == 0:
                writer.checksum(0, frame, state_hash(env.get_state()), "s0")
            action = frame % 2 if player == "player" else frame % 3
            writer.inputs(0, frame, [action])
            result = env.step({player: action})
            if result["terminated"] or result["truncated"]:
                writer.checksum(0, frame + 1, state_hash(env.get_state()), "s0")
                writer.event("episode_end", {}, 0, frame + 1)
                return
        writer.checksum(0, frames, state_hash(env.get_state()), "s0")


# ----------------------------------------------------------------------------- the bundle of one game


def test_the_tree_of_a_game_holds_its_sub_packages_and_nothing_of_coplay(tmp_path: Path) -> None:
    spec = write_walker(tmp_path / "study")
    tree = game_tree(spec)
    assert tree["game"] == "walker:Walker" and tree["paths"] == ["user/0"]
    assert set(tree["files"]) == {"user/0/walker.py", "user/0/rules/__init__.py", "user/0/rules/moves.py",
                                  "user/0/rules/deep/__init__.py", "user/0/rules/deep/limits.py"}
    bundle = game_bundle(spec)
    assert bundle["games"] == {spec: "walker:Walker"} and "netcode/worker_glue.py" in bundle["files"]


def test_a_seeds_game_is_bundled_with_its_folder(tmp_path: Path) -> None:
    spec = write_seeds_cartpole(tmp_path / "seeds")
    bundle = game_bundle(spec)
    assert bundle["games"] == {spec: "seeds:seeds_cart:SeedsCartPole"}
    assert "user/0/seeds_cart.py" in bundle["files"] and "game/adapters/seeds.py" in bundle["files"]
    assert game_tree(spec)["game"] == "seeds:seeds_cart:SeedsCartPole"


@needs_node
def test_check_env_in_pyodide_imports_sub_packages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It shipped only sibling .py files: "No module named 'rules'"."""
    spec = write_walker(tmp_path / "study")
    assert main(["check-env", spec, "--frames", "40", "--no-hash-seed-check", "--runtime", "pyodide"]) == 0
    assert "pyodide:    same checksums as CPython at every frame" in capsys.readouterr().out


@needs_node
def test_check_env_in_pyodide_runs_a_seeds_game(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_seeds_cartpole(tmp_path / "seeds")
    assert main(["check-env", spec, "--frames", "60", "--no-hash-seed-check", "--runtime", "pyodide"]) == 0
    assert "pyodide:    same checksums as CPython at every frame" in capsys.readouterr().out


def test_check_env_in_pyodide_names_numpy_and_the_fix_for_gymnasium(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-env", "gymnasium:CartPole-v1", "--frames", "20", "--no-hash-seed-check", "--runtime",
                 "pyodide", "--packages-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "package 'numpy' cannot be served to browsers" in err and "pyodide_2024_0_wasm32.whl" in err
    assert str(tmp_path) in err


# ----------------------------------------------------------------------------- recordings keep the tree


def test_the_recording_stores_the_tree_and_replays_after_the_files_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "study"
    spec = write_walker(folder)
    path = tmp_path / "m1.jsonl"
    record(path, spec, class_from_tree(game_tree(spec)))
    header = read_recording(str(path)).header
    assert header["game_tree"]["files"]["user/0/rules/moves.py"] == "STEP = 3\n"
    assert len(header["game_tree_sha256"]) == 64
    shutil.rmtree(folder)   # years later
    assert main(["replay", str(path), "--recorded-source"]) == 0
    assert "ok: every checksum matches" in capsys.readouterr().out


def test_a_tree_imports_apart_from_modules_of_the_same_name(tmp_path: Path) -> None:
    first, second = write_walker(tmp_path / "a", step=1), write_walker(tmp_path / "b", step=2)
    for name in [n for n in sys.modules if n.partition(".")[0] == "rules"]:   # other tests' rules
        del sys.modules[name]
    live = load_class(first)   # this process imported a's rules (STEP = 1)
    (tmp_path / "b" / "rules" / "moves.py").write_text("STEP = 2\n")
    recorded = class_from_tree(game_tree(second))
    moved = []
    for cls in (live, recorded):
        env = cls({})
        env.reset(0)
        env.step({"p": 1})
        moved.append(env.get_state()["t"])
    assert moved == [2, 3]   # each its own rules.moves.STEP
    assert sys.modules["rules.moves"].STEP == 1 and str(tmp_path / "a") in sys.modules["rules.moves"].__file__


def test_a_seeds_recording_replays_from_its_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_seeds_cartpole(tmp_path / "seeds")
    path = tmp_path / "m1.jsonl"
    record(path, spec, class_from_tree(game_tree(spec)))
    shutil.rmtree(tmp_path / "seeds")
    cls = recorded_game(read_recording(str(path)))
    assert issubclass(cls, SeedsEnv)
    assert main(["replay", str(path), "--recorded-source"]) == 0
    assert "ok: every checksum matches" in capsys.readouterr().out


def test_an_old_recording_without_a_tree_still_replays_its_recorded_source(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_walker(tmp_path / "study")
    (tmp_path / "flat.py").write_text(textwrap.dedent(GAME).replace(
        "from rules.moves import STEP\nfrom rules.deep.limits import LIMIT\n", "STEP = 3\nLIMIT = 1000\n"))
    path = tmp_path / "m1.jsonl"
    record(path, spec, class_from_tree(game_tree(spec)))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    header = {k: v for k, v in lines[0].items() if k not in ("game_tree", "game_tree_sha256")}
    header["game_source"] = (tmp_path / "flat.py").read_text()
    path.write_text("".join(json.dumps(line) + "\n" for line in [header, *lines[1:]]))
    assert main(["replay", str(path), "--recorded-source"]) == 0
    assert "ok: every checksum matches" in capsys.readouterr().out


@needs_node
def test_replay_in_pyodide_loads_the_recorded_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It sent only the recorded entry module: "No module named 'rules'"."""
    folder = tmp_path / "study"
    spec = write_walker(folder)
    path = tmp_path / "m1.jsonl"
    record(path, spec, class_from_tree(game_tree(spec)))
    shutil.rmtree(folder)
    assert main(["replay", str(path), "--recorded-source", "--runtime", "pyodide"]) == 0
    assert "ok: CPython and Pyodide agree on all 120 frames" in capsys.readouterr().out


# ----------------------------------------------------------------------------- adapter games in the browser

SEEDS_EXPERIMENT = '''
from scenes import End, Experiment, Match

EXPERIMENT = Experiment(id="seeds", scenes=[
    Match(id="cart", game="seeds:seeds/seeds_cart.py:SeedsCartPole", config={"max_steps": 150}, humans=("player",),
          episodes=2, fps=60, keys={"ArrowLeft": 0, "ArrowRight": 1}),
    Match(id="gym", game="gymnasium:CartPole-v1", config={"max_episode_steps": 45}, humans=("player",)),
    End(id="end", html="<p>Thanks</p>", completion_code="SEEDS"),
])
'''


def test_a_seeds_game_plays_in_the_browser_and_gymnasium_is_refused_there_with_the_fix(
        browser: Any, tmp_path: Path) -> None:
    """seeds: games are pure Python: the page's Pyodide runs them. A gymnasium: game needs numpy, which
    this server cannot serve: the server still starts (headless participants and bots can play it), warns
    at start, and the page says what is missing."""
    write_seeds_cartpole(tmp_path / "seeds")
    (tmp_path / "experiment.py").write_text(SEEDS_EXPERIMENT)
    server = Server(["serve", str(tmp_path / "experiment.py")], tmp_path / "data")
    page = open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1")
    try:
        bundle = requests.get(server.url + "/bundle.json", timeout=30).json()
        assert "package 'numpy' cannot be served" in bundle["unavailable"]["gymnasium:CartPole-v1"]
        assert "warning: game gymnasium:CartPole-v1 cannot run in browsers" in server.log_path.read_text()
        failed = page.wait_for(lambda s: s.get("worker", {}).get("error"), 150, "the gymnasium match to fail")
        assert "game gymnasium:CartPole-v1 cannot run in browsers: package 'numpy'" in failed["worker"]["error"]
        played = [r for r in failed["match"]["checksums"] if r["match"]]
        [match_id] = {report["match"] for report in played}
        replayed = replay(str(server.data_dir / "seeds" / "recordings" / f"{match_id}.jsonl"))
        assert replayed.verdict == "ok" and replayed.checked > 2 and not replayed.client_mismatches, replayed
    finally:
        page.close()
        server.stop()
