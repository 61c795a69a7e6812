"""The browser worker's core (static/worker_core.js) under Node: Pyodide, LOAD, a two-seat
Pong episode through the match loop, BATCH, STEP, EVAL, errors and TERMINATE.

tests/worker_core_node.mjs drives two cores and prints one JSON report; this module
builds its input (the bundle from the repo's game/ and netcode/, the match, the request
lists), checks the report and compares the BATCH checksums with CPython's.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.pyodide.node import REPO_ROOT, SETUP_HINT, node_executable, package_files, pyodide_dir

pytestmark = pytest.mark.skipif(node_executable() is None, reason="node is not on PATH")

DRIVER = REPO_ROOT / "tests" / "worker_core_node.mjs"
PONG = "game.games.pong:Pong"
PLAYERS = ["left", "right"]


def advance(frame: int, left: int, right: int) -> dict[str, Any]:
    return {"op": "advance", "frame": frame, "inputs": {"left": left, "right": right},
            "status": {"left": "confirmed", "right": "predicted"}}


def save(frame: int, checksum: bool = True) -> dict[str, Any]:
    return {"op": "save", "frame": frame, "checksum": checksum}


def batch_requests() -> list[dict[str, Any]]:
    """Ten frames saved with checksums, then a rollback to frame 3 with other inputs."""
    requests = [save(0)]
    for f in range(10):
        requests += [advance(f, f % 3, (f // 2) % 3), save(f + 1)]
    requests.append({"op": "load", "frame": 3})
    for f in range(3, 10):
        requests += [advance(f, 2, 1), save(f + 1)]
    return requests


def cpython_checksums(requests: list[dict[str, Any]], config: dict[str, Any], seed: int) -> list[list[Any]]:
    from game.games.pong import Pong
    from netcode.executor import Executor
    from netcode.requests import AdvanceFrame, LoadState, SaveState

    env = Pong(config)
    env.reset(seed)
    parsed = [SaveState(r["frame"], r["checksum"]) if r["op"] == "save" else LoadState(r["frame"]) if r["op"] == "load"
              else AdvanceFrame(r["frame"], r["inputs"], r["status"]) for r in requests]
    return [list(pair) for pair in Executor(env).run(parsed).checksums]


def match_start(seat: str, players: list[str], peers: dict[str, list[str]]) -> dict[str, Any]:
    return {"match": "m1", "episode": 0, "episodes": 1, "seed": 7, "seat": seat, "players": players, "peers": peers,
            "game": PONG, "config": {"max_score": 1, "max_frames": 120}, "fps": 60,
            "netcode": {"input_delay": 1}, "keys": {}}


def driver_config() -> dict[str, Any]:
    bench_config = {"max_score": 100, "max_frames": 100000}
    warmup = [save(0, False)]
    rollback = [{"op": "load", "frame": 0}]
    for f in range(8):
        warmup += [advance(f, 1, 2), save(f + 1, False)]
        rollback += [advance(f, 2, 1), save(f + 1, f == 7)]
    return {
        "indexURL": str(pyodide_dir().resolve()) + "/",
        "bundle": {"files": package_files(), "paths": [], "games": {PONG: PONG}, "packages": []},
        "match": {
            "game": PONG, "latency_ms": 10, "timeout_ms": 20000,
            "start_for": {"s0": match_start("s0", ["left"], {"s1": ["right"]}),
                          "s1": match_start("s1", ["right"], {"s0": ["left"]})},
            "seats": {"s0": {"players": ["left"], "inputs": [1, 0, 2], "every_ms": 150},
                      "s1": {"players": ["right"], "inputs": [2, 2, 0, 1], "every_ms": 110}},
            "solo_start": match_start("solo", PLAYERS, {}),
        },
        "batch": {"game": PONG, "config": {"max_score": 3}, "seed": 11, "requests": batch_requests()},
        "bench": {"game": PONG, "config": bench_config, "seed": 3, "warmup": warmup, "rollback": rollback,
                  "actions": {"left": 1, "right": 2}, "repeats": 40},
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (pyodide_dir() / "pyodide.mjs").is_file():
        pytest.fail(f"Pyodide is not installed at {pyodide_dir()}; {SETUP_HINT}")
    config_path: Path = tmp_path_factory.mktemp("worker") / "config.json"
    config_path.write_text(json.dumps(driver_config()), encoding="utf-8")
    proc = subprocess.run(
        [node_executable(), str(DRIVER), str(config_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1])


def test_init_reports_progress_then_ready(report: dict[str, Any]) -> None:
    assert report["version"] == "0.27.7"
    messages = report["init_messages"]
    pyodide = [m["fraction"] for m in messages if m["type"] == "PROGRESS" and m["stage"] == "pyodide"]
    assert pyodide == sorted(pyodide) and pyodide[0] < 0.5 and pyodide[-1] == 1
    bundle = [m["fraction"] for m in messages if m["type"] == "PROGRESS" and m["stage"] == "bundle"]
    assert len(bundle) >= 6 and bundle == sorted(bundle) and bundle[-1] == 1  # every 20 % of files, then imported
    assert [m["type"] for m in messages][:len(pyodide) + 1] == ["PROGRESS"] * len(pyodide) + ["READY"]
    for seat in ("s0", "s1"):
        assert report["timings"][f"load_{seat}"]["files"] == len(package_files())
        assert report["timings"][f"init_{seat}"]["reported_s"] > 0


def test_two_seats_play_pong_to_the_same_checksum(report: dict[str, Any]) -> None:
    match = report["match"]
    assert match["loop_errors"] == []
    done = match["finished"]
    assert set(done) == {"s0", "s1"}
    same = [{k: v for k, v in done[seat].items() if k not in ("ms", "predicted")} for seat in ("s0", "s1")]
    assert same[0] == same[1]
    # each seat reports the frames it predicted of the player it does not play (s0 plays left)
    assert [sorted(done[seat]["predicted"]) for seat in ("s0", "s1")] == [["right"], ["left"]]
    assert done["s0"]["match"] == "m1" and done["s0"]["episode"] == 0 and 0 < done["s0"]["frame"] <= 120
    assert match["done_count"] == {"s0": 1, "s1": 1}
    for seat in ("s0", "s1"):
        info = match[seat]
        assert info["stats"]["desyncs"] == 0 and info["stats"]["done"]
        assert info["out_messages"] > 0 and info["drawn"] > 0
        assert info["first_primitive"]["type"] == "viewport"
        assert set(info["observations"]) == {"left" if seat == "s0" else "right"}
        assert info["stop"] == {} and info["states_after_stop"] == 0
    # real time at 60 fps: the episode's frames took about frame / 60 s
    assert done["s0"]["ms"] >= done["s0"]["frame"] * 1000 / 60 * 0.8


def test_batch_matches_cpython(report: dict[str, Any]) -> None:
    batch = driver_config()["batch"]
    expected = cpython_checksums(batch["requests"], batch["config"], batch["seed"])
    assert report["batch"]["type"] == "RESULT"
    assert report["batch"]["value"]["checksums"] == expected
    assert report["batch"]["value"]["frame"] == 10 and len(expected) == 18
    missing = report["batch_missing"]
    assert missing["type"] == "ERROR" and "snapshot_missing" in missing["message"]
    assert "NetcodeError" in missing["traceback"] and "executor.py" in missing["traceback"]


def test_a_second_load_imports_the_new_bundle_afresh(report: dict[str, Any]) -> None:
    assert report["reload"]["type"] == "RESULT" and report["reload"]["value"]["files"] == len(package_files())
    assert report["after_reload"]["value"] == {
        "value": {"glue": True, "fresh": True, "match": None, "netcode": "/home/pyodide/coplay/netcode/__init__.py"}}


def test_errors_carry_the_python_traceback(report: dict[str, Any]) -> None:
    bad = report["bad_game"]
    assert bad["type"] == "ERROR" and bad["id"] == "s0-3"
    # START loads the game with game.loader.load_class, called from the bundle's netcode/worker_glue.py
    assert re.match(r"([\w.]+\.)?LoadError: ", bad["message"]) and "NoSuchGame" in bad["message"]
    assert bad["traceback"].startswith("Traceback") and "worker_glue.py" in bad["traceback"]
    bad_module = report["bad_module"]
    assert re.match(r"([\w.]+\.)?LoadError: ", bad_module["message"]) and "no_such_module" in bad_module["message"]
    assert "ModuleNotFoundError: " in bad_module["traceback"]
    error = report["eval_error"]
    assert error["message"] == "KeyError: 'missing'" and '"<EVAL>", line 2, in f' in error["traceback"]
    assert report["unknown"]["id"] == "odd" and "NOPE" in report["unknown"]["message"]
    loop = report["loop_error"]
    assert loop is not None and loop["id"] is None and "invalid_input" in loop["message"]
    assert "NetcodeError" in loop["traceback"]
    assert report["states_after_loop_error"] == 0


def test_eval_and_terminate(report: dict[str, Any]) -> None:
    assert report["eval"]["value"] == {"value": {"platform": "emscripten", "sum": 2}}
    for seat in ("s0", "s1"):
        assert report[f"terminate_{seat}"]["answer"]["type"] == "RESULT"
        assert report[f"terminate_{seat}"]["closed"]
    assert report["after_terminate"]["type"] == "ERROR" and "terminated" in report["after_terminate"]["message"]


def test_benchmark_numbers(report: dict[str, Any]) -> None:
    bench = report["bench"]
    assert bench["batch_ms"]["n"] == bench["nine_steps_ms"]["n"] == 40
    assert bench["step"]["frame"] > 8
    thread = report["bench_thread"]
    assert thread["batch_ms"]["n"] == 40 and thread["terminate"]["type"] == "RESULT"
    match = report["match"]
    print(json.dumps({"timings": report["timings"], "tick_ms": match["s0"]["tick_ms"],
                      "episode": {"frame": match["finished"]["s0"]["frame"], "ms": match["finished"]["s0"]["ms"]},
                      "in_thread": bench, "worker_thread": thread}, indent=1))
