"""`coplay check-env`: exit codes, printed summaries and failures, the hash-seed and Pyodide checks."""
from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

TOY_FILE = '''
from game.rng import Rng
from game.spaces import Discrete


class Toy:
    players = ("left", "right")
    action_space = Discrete(3)
    default_action = 1

    def __init__(self, config=None):
        self.length = (config or {}).get("episode_length", 40)
        self.rng = Rng(0)
        self.frame = 0
        self.pos = {}

    def reset(self, seed):
        self.rng = Rng(seed)
        self.frame = 0
        self.pos = {p: 0 for p in self.players}
        return self.observations()

    def observations(self):
        return {p: [self.pos[p], self.frame] for p in self.players}

    def step(self, actions):
        self.frame += 1
        for p in self.players:
            self.pos[p] += actions[p] - 1 + self.rng.randbelow(2) + self.extra(p)
        return {"observations": self.observations(), "rewards": {p: 0 for p in self.players},
                "terminated": self.frame >= self.length, "truncated": False, "info": {}}

    def extra(self, player):
        return 0

    def get_state(self):
        return {"frame": self.frame, "pos": dict(self.pos), "rng": self.rng.getstate()}

    def set_state(self, state):
        self.frame, self.pos = state["frame"], dict(state["pos"])
        self.rng.setstate(state["rng"])
'''

BROKEN_FILES = {
    # iterates a set of strings: same in one process, different with another PYTHONHASHSEED
    "by_hash": '''
TAGS = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}

class ByHash(Toy):
    def extra(self, player):
        return len(next(iter(TAGS))) if player == "left" else 0
''',
    "uses_time": '''
import time

class UsesTime(Toy):
    def extra(self, player):
        return time.perf_counter_ns() % 7
''',
    "crashes": '''
class Crashes(Toy):
    def extra(self, player):
        if self.frame == 5:
            raise RuntimeError("the ball left the field")
        return 0
''',
}


@pytest.fixture
def coplay(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """`app.cli.main`, with sys.path restored afterwards (load_class adds the game file's folder)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    from app import cli

    return cli.main


def write_game(folder: Path, name: str) -> str:
    """Write the toy (plus one broken subclass) to FOLDER/NAME.py; return its path."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(TOY_FILE) + textwrap.dedent(BROKEN_FILES.get(name, "")))
    return str(path)


def test_cli_passing_game(coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_game(tmp_path, "good_game") + ":Toy"
    assert coplay(["check-env", spec, "--frames", "60", "--seed", "2", "--config", '{"episode_length": 25}']) == 0
    out = capsys.readouterr().out
    assert "check-env: Toy passed (60 frames, 3 episodes, seed 2)" in out
    assert "  players:    left, right\n" in out
    assert "  snapshots:  get_state/set_state\n" in out
    assert "  mean time:  step " in out and " µs, get_state " in out and " µs, state_hash " in out
    assert "  hash seed:  same trajectory with PYTHONHASHSEED=1 and 2\n" in out


def test_cli_reports_the_generic_snapshot(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "no_snapshots.py"
    path.write_text(textwrap.dedent(TOY_FILE) + "\ndel Toy.get_state, Toy.set_state\n")
    assert coplay(["check-env", f"{path}:Toy", "--frames", "30", "--no-hash-seed-check"]) == 0
    out = capsys.readouterr().out
    assert "  snapshots:  generic snapshot (no get_state/set_state): slower than your own get_state" in out
    assert "hash seed" not in out


def test_cli_catches_string_hash_dependence(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_game(tmp_path, "by_hash") + ":ByHash"
    assert coplay(["check-env", spec, "--frames", "30"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "check-env: ByHash FAILED [hash_seed_dependent]\n"
        "The game is not deterministic across Python processes: with PYTHONHASHSEED=1 and PYTHONHASHSEED=2, "
        "the same seed and inputs diverge at frame 1. The game depends on the hash of strings, which differs "
        "in every process and browser: don't iterate over a set or frozenset of strings or call hash() on "
        "them; use a list, a dict, or sorted(...).\n"
    )


def test_cli_failing_check(coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_game(tmp_path, "uses_time") + ":UsesTime"
    assert coplay(["check-env", spec, "--frames", "30"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("check-env: UsesTime FAILED [nondeterministic]\nTwo instances with the same seed")


def test_cli_prints_the_games_traceback(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_game(tmp_path, "crashes") + ":Crashes"
    assert coplay(["check-env", spec, "--no-hash-seed-check"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert "crashes.py" in err and "RuntimeError: the ball left the field" in err
    assert "check-env: Crashes FAILED [env_raised]\nstep() at frame 5 (actions " in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{dir}/missing.py:Toy"], "check-env: no such file: {dir}/missing.py\n"),
        (["{dir}/good_game.py:Nope"], "check-env: {dir}/good_game.py has no class named 'Nope'\n"),
        (
            ["{dir}/good_game.py"],
            "check-env: '{dir}/good_game.py' is not of the form FILE.py:Class or package.module:Class\n",
        ),
        (["{dir}/good_game.py:Toy", "--config", "[1]"], "check-env: --config must be a JSON object, got list\n"),
    ],
)
def test_cli_usage_errors(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    write_game(tmp_path, "good_game")
    assert coplay(["check-env", *(arg.format(dir=tmp_path) for arg in argv)]) == 2
    assert capsys.readouterr().err == message.format(dir=tmp_path)


def test_cli_rejects_bad_frames(coplay: Callable[..., int], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        coplay(["check-env", "x.py:Toy", "--frames", "0"])
    assert caught.value.code == 2
    assert "argument --frames: must be a whole number >= 1, got '0'" in capsys.readouterr().err


SINE_GAME = """
import math

class Sine(Toy):
    def get_state(self):
        return {**super().get_state(), "wave": [math.sin(self.frame * 0.37 + k * 1.3) for k in range(200)]}
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH, so Pyodide cannot run")
def test_cli_pyodide_runtime_passes_a_portable_game(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_game(tmp_path, "good_game") + ":Toy"
    assert coplay(["check-env", spec, "--frames", "60", "--no-hash-seed-check", "--runtime", "pyodide"]) == 0
    assert "  pyodide:    same checksums as CPython at every frame\n" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH, so Pyodide cannot run")
def test_cli_pyodide_runtime_catches_transcendental_floats(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sine.py"
    path.write_text(textwrap.dedent(TOY_FILE) + textwrap.dedent(SINE_GAME))
    assert coplay(["check-env", f"{path}:Sine", "--frames", "30", "--no-hash-seed-check", "--runtime", "pyodide"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("check-env: Sine FAILED [runtime_mismatch]\nCPython and Pyodide diverge at frame 0 (checksum ")
    assert "use integer or + - * / sqrt arithmetic instead." in err


def test_cli_hash_seed_check_ignores_what_the_game_prints(
    coplay: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13: the children's checksums come back in a file, so a library that prints at import
    (or a game that prints while it plays) no longer fails with hash_seed_check_failed."""
    path = tmp_path / "chatty.py"
    path.write_text('print("chatty library 1.0 loaded [", flush=True)\n' + textwrap.dedent(TOY_FILE)
                    + '\nclass Chatty(Toy):\n    def step(self, actions):\n        print("step", actions)\n'
                      '        return super().step(actions)\n')
    assert coplay(["check-env", f"{path}:Chatty", "--frames", "20"]) == 0
    assert "  hash seed:  same trajectory with PYTHONHASHSEED=1 and 2\n" in capsys.readouterr().out
