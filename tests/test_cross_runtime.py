"""Same bits in CPython and in Pyodide 0.27.7 (the browser's runtime, run here under Node).

Each test runs one snippet in both runtimes and compares what it returns: the snippet
sets `result`, which crosses back as JSON (exact for ints and floats), and floats that
matter are compared through `float.hex` so -0.0 and NaN cannot hide a difference.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.pyodide.node import (
    REPO_ROOT, PyodideError, PyodideNode, PyodideUnavailable, node_executable, package_files,
)

pytestmark = pytest.mark.skipif(node_executable() is None, reason="node is not on PATH, so Pyodide cannot run")


def run_here(code: str) -> Any:
    """Run a snippet in this CPython the way the bridge runs it in Pyodide: fresh namespace, JSON out."""
    namespace: dict[str, Any] = {"__name__": "__coplay__"}
    exec(compile(code, "<coplay snippet>", "exec"), namespace)
    return json.loads(json.dumps(namespace.get("result")))


def assert_same(pyodide: PyodideNode, code: str, files: dict[str, str] | None = None) -> Any:
    here = run_here(code)
    there = pyodide.run(code, files=files)
    assert there == here
    return here


def test_pyodide_is_the_browser_runtime(pyodide: PyodideNode) -> None:
    # guards against comparing CPython with itself
    assert pyodide.version == "0.27.7"
    assert pyodide.run("import sys; result = [sys.platform, sys.version_info[:2]]") == ["emscripten", [3, 12]]


def test_bridge_errors_carry_the_pyodide_traceback(pyodide: PyodideNode) -> None:
    with pytest.raises(PyodideError, match="ZeroDivisionError") as info:
        pyodide.run("import helper_mod\nhelper_mod.boom()", files={"helper_mod.py": "def boom():\n    return 1 / 0\n"})
    assert 'helper_mod.py", line 2, in boom' in info.value.traceback
    assert pyodide.run("print('hi')\nresult = {'n': 2**70, 'x': -0.0}") == {"n": 2**70, "x": -0.0}
    assert pyodide.last_stdout == "hi\n"


def test_missing_pyodide_names_the_setup_step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COPLAY_PYODIDE_DIR", str(tmp_path))
    with pytest.raises(PyodideUnavailable, match="scripts/setup"):
        PyodideNode().start()


def test_every_module_imports_in_pyodide(pyodide: PyodideNode) -> None:
    modules = sorted(path[:-3].replace("/", ".").removesuffix(".__init__") for path in package_files())
    code = f"import importlib\nresult = [m for m in {modules!r} if importlib.import_module(m)]"
    assert pyodide.run(code) == modules


HASH_BATTERY = r'''
import math
from game.hashing import canonical_bytes, state_hash

FLOATS = [
    0.1 + 0.2, 1 / 3, 2 / 3 * 3, 0.1 * 3, 1e-310, 5e-324, -5e-324, 2.2250738585072014e-308,
    -0.0, 0.0, 1.7976931348623157e308, 1e308 * 10, -1e308 * 10, float("nan"), 1e22, 1e23, 1e16 + 1,
    123456789.123456789e-5, 9007199254740993.0, float(2**64 + 1), 10**20 / 3, math.sqrt(2), math.sqrt(1e-300),
    7 / 1e-300, 1e-7, 1.5e-5, 1e15, 1e16, 1e17, 12345678901234567890.0, 0.000001, -2.5e-8, 3.0, 100.0,
]
STATES = [
    {"f": FLOATS},
    [float.hex(x) for x in FLOATS],
    {"big": [2**64, 2**64 + 1, -(2**100), 3**200, 2**63 - 1, -(2**63)], "small": [0, -1, True, False, None]},
    {"s": ["", "ascii", "é", "ü\u0301", "日本語", "🎮 emoji", "\x00\x1f\x7f", 'quote " \\ slash /', "\u2028\u2029", "\ud83d"]},
    {"zeta": 1, "alpha": {"y": [3, {"b": 2, "a": 1}], "x": ()}, "Mid": [], "mid": {}, "10": 0, "9": 1, "": None},
    ((1, 2.5), [(), ((-0.0,),)], {"t": (True, None, "x")}),
    [{"k%d" % i: [i, i / 7, str(i)] for i in range(40, 0, -3)}],
    {"frame": 12, "ball": {"x": 400.5, "y": 300.25, "vx": -6.0, "vy": 0.1 + 0.7}, "rng": 2**64 - 1},
]
result = [[canonical_bytes(s).hex(), state_hash(s)] for s in STATES]
'''


def test_canonical_bytes_and_state_hash(pyodide: PyodideNode) -> None:
    result = assert_same(pyodide, HASH_BATTERY)
    assert len(result) == 8 and len({h for _, h in result}) == 8


RNG = r'''
from game.rng import Rng


def shuffled(rng, n):
    items = list(range(n))
    rng.shuffle(items)
    return items


result = {}
for seed in (0, 1, 42, 2**64 - 1, 2**70 + 5, -5):
    rng = Rng(seed)
    result[str(seed)] = {
        "u64": [rng.next_u64() for _ in range(200)],
        "random": [rng.random().hex() for _ in range(200)],
        "randint": [rng.randint(-3, 3) for _ in range(100)] + [rng.randint(0, 2**80) for _ in range(20)],  # wider than one draw
        "uniform": [rng.uniform(-1.5, 2.25).hex() for _ in range(100)],
        "choice": [rng.choice("abcdefg") for _ in range(50)],
        "shuffle": [shuffled(rng, n) for n in (0, 1, 2, 10, 50)],
        "state": rng.getstate(),
    }
'''


def test_rng_sequences(pyodide: PyodideNode) -> None:
    result = assert_same(pyodide, RNG)
    assert result["0"]["u64"][0] == 0xE220A8397B1DCDAF  # SplitMix64's published first output for seed 0


SPACES = r'''
from game.hashing import state_hash
from game.rng import Rng
from game.spaces import Box, Dict, Discrete, Tuple

spaces = [
    Discrete(5), Discrete(3, start=-1), Box(-1.0, 1.0), Box(-1.0, 1.0, (2, 3)), Box(0, 10, (4,), integer=True),
    Box(-1e300, 1e300, (3,)), Dict({"move": Discrete(5), "aim": Box(-1, 1, (2,)), "fire": Discrete(2)}),
    Tuple([Discrete(4), Box(0.0, 0.5, (2,)), Dict({"z": Discrete(2)})]),
]
rng = Rng(2024)
samples = [[space.sample(rng) for _ in range(100)] for space in spaces]
assert all(space.contains(x) for space, xs in zip(spaces, samples) for x in xs)
result = {"hashes": [state_hash(xs) for xs in samples], "samples": samples, "rng": rng.getstate()}
'''


def test_space_samples(pyodide: PyodideNode) -> None:
    assert_same(pyodide, SPACES)


TRAJECTORY = r'''
from game.env import action_space_for
from game.hashing import state_hash
from game.rng import Rng
from {module} import {cls}

env = {cls}()
env.reset(7)
rng = Rng(99)
states, outputs = [state_hash(env.get_state())], []
for frame in range(600):
    actions = {{p: action_space_for(env, p).sample(rng) for p in env.players}}
    out = env.step(actions)
    outputs.append(state_hash(out))
    states.append(state_hash(env.get_state()))
    if out["terminated"] or out["truncated"]:
        env.reset(frame)
result = {{"states": states, "outputs": outputs}}
'''


def _game(module: str, cls: str) -> Any:
    path = REPO_ROOT / (module.replace(".", "/") + ".py")
    return pytest.param(module, cls, id=cls, marks=pytest.mark.skipif(not path.is_file(), reason=f"no {path.name}"))


@pytest.mark.parametrize(("module", "cls"), [_game("game.games.pong", "Pong"), _game("game.games.cooking", "Cooking")])
def test_game_trajectory_hashes(pyodide: PyodideNode, module: str, cls: str) -> None:
    result = assert_same(pyodide, TRAJECTORY.format(module=module, cls=cls))
    assert len(result["states"]) == 601 and len(set(result["states"])) > 100


# A user game shipped as an extra file, so the netcode test needs no reference game.
TINY_GAME = '''
from game.rng import Rng
from game.spaces import Discrete


class Tiny:
    players = ("a", "b")
    action_space = Discrete(3)
    default_action = 0

    def __init__(self, config=None):
        self.reset(0)

    def reset(self, seed):
        self.frame, self.pos, self.rng = 0, [0, 0], Rng(seed)
        return {p: 0 for p in self.players}

    def step(self, actions):
        self.frame += 1
        for i, p in enumerate(self.players):
            self.pos[i] += actions[p] - 1 + (self.rng.next_u64() & 1)
        obs = {p: self.pos[i] for i, p in enumerate(self.players)}
        return {"observations": obs, "rewards": {p: 0.0 for p in self.players},
                "terminated": False, "truncated": False, "info": {}}

    def get_state(self):
        return {"frame": self.frame, "pos": list(self.pos), "rng": self.rng.getstate()}

    def set_state(self, state):
        self.frame, self.pos = state["frame"], list(state["pos"])
        self.rng.setstate(state["rng"])
'''

SIM_MATCH = r'''
from netcode.simmatch import run_sim_match
from {module} import {cls}

report = run_sim_match(lambda i: {cls}(), peers=2, profile="wifi", frames=300, seed=1)
result = report.to_json()
'''


@pytest.mark.parametrize(("module", "cls"), [pytest.param("coplay_tiny_game", "Tiny", id="Tiny"), _game("game.games.pong", "Pong")])
def test_sim_match_report(pyodide: PyodideNode, module: str, cls: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "coplay_tiny_game.py").write_text(TINY_GAME)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = assert_same(pyodide, SIM_MATCH.format(module=module, cls=cls), files={"coplay_tiny_game.py": TINY_GAME})
    assert result["converged"], result["reason"]
    assert result["checked_frames"] > 0 and result["rollbacks"] > 0 and result["frames"] == 300
