"""netcode/worker_glue.py, the browser worker's Python side, driven in CPython as
static/worker_core.js drives it in Pyodide: prepare, load, start, tick, step, batch, evaluate."""
from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

from game.games.pong import Pong
from netcode import codec
from netcode.executor import Executor
from netcode.requests import AdvanceFrame, LoadState, SaveState

GLUE_FILE = Path(__file__).resolve().parents[1] / "netcode" / "worker_glue.py"
PONG = "game.games.pong:Pong"
WORKER_CORE = Path(__file__).resolve().parents[1] / "static" / "worker_core.js"


@pytest.fixture
def glues(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ModuleType]]:
    """Two independent copies of the glue module (one per seat, as two workers would have)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    copies = {}
    for seat in ("s0", "s1"):
        name = f"worker_glue_{seat}"
        spec = importlib.util.spec_from_file_location(name, GLUE_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        copies[seat] = module
    yield copies
    for module in copies.values():
        module.terminate()


def match_start(seat: str, players: list[str], peers: dict[str, list[str]]) -> dict[str, Any]:
    return {"match": "m1", "episode": 0, "episodes": 1, "seed": 7, "seat": seat, "players": players, "peers": peers,
            "game": PONG, "config": {"max_score": 1, "max_frames": 120}, "fps": 60,
            "netcode": {"input_delay": 1}, "keys": {}}


def test_the_functions_worker_core_js_calls_are_the_glues() -> None:
    listed = WORKER_CORE.read_text(encoding="utf-8").split("const GLUE_FUNCTIONS = [", 1)[1].split("]", 1)[0]
    names = [name.strip().strip('"') for name in listed.split(",")]
    spec = importlib.util.spec_from_file_location("worker_glue_names", GLUE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert names and all(callable(getattr(module, name, None)) for name in names)


def test_docs_worker_md_lists_every_glue_function_with_its_arguments() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "worker.md").read_text(encoding="utf-8")
    listed = WORKER_CORE.read_text(encoding="utf-8").split("const GLUE_FUNCTIONS = [", 1)[1].split("]", 1)[0]
    spec = importlib.util.spec_from_file_location("worker_glue_doc", GLUE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in (name.strip().strip('"') for name in listed.split(",")):
        parameters = inspect.signature(getattr(module, name)).parameters.values()
        arguments = ", ".join(p.name if p.default is p.empty else f"{p.name}={json.dumps(p.default)}"
                              for p in parameters)
        assert f"| `{name}({arguments})` |" in doc, f"docs/worker.md does not list `{name}({arguments})`"


def test_load_puts_the_bundle_paths_on_sys_path_and_prepare_forgets_its_modules(
        glues: dict[str, ModuleType], tmp_path: Path) -> None:
    glue = glues["s0"]
    (tmp_path / "user" / "0").mkdir(parents=True)
    (tmp_path / "user" / "0" / "tinygame.py").write_text(
        "from game.games.pong import Pong\n\n\nclass Tiny(Pong):\n    pass\n", encoding="utf-8")
    answer = json.loads(glue.load(str(tmp_path), json.dumps(["user/0"])))
    assert answer == {"python": sys.version.split()[0]}
    assert sys.path[:2] == [str(tmp_path), str(tmp_path / "user" / "0")]
    started = json.loads(glue.start(json.dumps(match_start("solo", ["left", "right"], {})), "tinygame:Tiny"))
    assert started == {"frame": 0, "players": ["left", "right"]}
    assert "tinygame" in sys.modules
    glue.prepare()
    assert "tinygame" not in sys.modules and glue._match is None
    with pytest.raises(ValueError, match="leaves the bundle folder"):
        glue.load(str(tmp_path), json.dumps(["../elsewhere"]))


def test_two_seats_tick_pong_to_the_same_checksum(glues: dict[str, ModuleType]) -> None:
    a, b = glues["s0"], glues["s1"]
    a.start(json.dumps(match_start("s0", ["left"], {"s1": ["right"]})), PONG)
    b.start(json.dumps(match_start("s1", ["right"], {"s0": ["left"]})), PONG)
    inbox: dict[str, list[dict[str, str]]] = {"s0": [], "s1": []}
    done: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for frame in range(2000):
        for seat, glue, player in (("s0", a, "left"), ("s1", b, "right")):
            received, inbox[seat] = inbox[seat], []
            out = json.loads(glue.tick(json.dumps({player: frame // 7 % 3}), json.dumps(received), frame % 10 == 0))
            for packet in out["packets"]:
                assert (packet["match"], packet["episode"]) == ("m1", 0)
                inbox[packet["to"]].append({"from": seat, "data": packet["data"]})
            if out["done"] is not None:
                done.setdefault(seat, out["done"])
            last[seat] = out
        if len(done) == 2:
            break
    assert set(done) == {"s0", "s1"}
    same = [{k: v for k, v in done[seat].items() if k != "predicted"} for seat in ("s0", "s1")]
    assert same[0] == same[1] and 0 < same[0]["frame"] <= 120
    # each seat reports the frames it predicted of the player it does not play
    assert sorted(done["s0"]["predicted"]) == ["right"] and sorted(done["s1"]["predicted"]) == ["left"]
    assert last["s0"]["stats"]["done"] and last["s0"]["stats"]["desyncs"] == 0
    drawn = json.loads(a.tick("{}", "[]", True))
    assert drawn["primitives"][0]["type"] == "viewport" and set(drawn["observations"]) == {"left"}
    assert json.loads(a.evaluate("result = worker._match.done['checksum']")) == done["s0"]["checksum"]


def test_tick_without_a_match_and_a_missing_player_action(glues: dict[str, ModuleType]) -> None:
    glue = glues["s0"]
    with pytest.raises(RuntimeError, match="START one first"):
        glue.tick("{}", "[]", False)
    glue.start(json.dumps(match_start("solo", ["left", "right"], {})), PONG)
    out = json.loads(glue.tick(json.dumps({"left": 1}), "[]", False))   # right plays the default action
    assert out["frame"] == 1 and out["skip"] == 0
    # Alone (no peers), the seat sends its confirmed inputs to the server, which records them.
    assert out["packets"] and {p["to"] for p in out["packets"]} == {"server"}
    assert codec.decode(out["packets"][-1]["data"]).kind == "confirmed"
    glue.stop()
    assert glue._match is None


def test_step_and_batch_run_on_the_bench_env_like_an_executor(glues: dict[str, ModuleType]) -> None:
    glue = glues["s0"]
    with pytest.raises(RuntimeError, match="no env for STEP / BATCH"):
        glue.step("{}", "")
    env_json = json.dumps({"game": PONG, "config": {"max_score": 3}, "seed": 11})
    requests: list[dict[str, Any]] = [{"op": "save", "frame": 0, "checksum": True}]
    for f in range(5):
        requests += [{"op": "advance", "frame": f, "inputs": {"left": f % 3, "right": 2}, "status": {}},
                     {"op": "save", "frame": f + 1, "checksum": True}]
    requests += [{"op": "load", "frame": 2}, {"op": "advance", "frame": 2, "inputs": {"left": 0, "right": 0}},
                 {"op": "save", "frame": 3, "checksum": True}]
    answer = json.loads(glue.batch(json.dumps(requests), env_json))

    env = Pong({"max_score": 3})
    env.reset(11)
    parsed = [SaveState(r["frame"], r["checksum"]) if r["op"] == "save" else LoadState(r["frame"])
              if r["op"] == "load" else AdvanceFrame(r["frame"], r["inputs"], r.get("status") or {}) for r in requests]
    expected = Executor(env).run(parsed)
    assert answer == {"checksums": [list(c) for c in expected.checksums], "frame": 3}
    stepped = json.loads(glue.step(json.dumps({"left": 1}), ""))   # the same bench env, one frame on
    assert stepped == {"frame": 4, "terminated": False, "truncated": False}
    with pytest.raises(Exception, match="invalid_request"):
        glue.batch(json.dumps([{"op": "jump"}]), "")
