"""`coplay play` as a subprocess: what it refuses (clear message, exit 2, nothing written) and what its
server answers besides the page (settings, CSP, the /record endpoint's checks)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.server_fixtures import ROOT, Server

PONG = "game.games.pong:Pong"
NUMPY_GAME = '''
import numpy as np

from game.games.pong import Pong


class NumpyPong(Pong):
    pass
'''
NUMPY_POLICY = '''
import numpy


class Policy:
    def act(self, observation):
        return 0
'''


def play(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", "play", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("play_cli")
    (path / "numpy_pong.py").write_text(NUMPY_GAME)
    (path / "numpy_policy.py").write_text(NUMPY_POLICY)
    return path


@pytest.mark.parametrize("argv, message", [
    (["gymnasium:CartPole-v1"], "gymnasium games need numpy and gymnasium, which the browser worker cannot load"),
    (["pettingzoo:pettingzoo.classic.rps_v2"], "coplay check-env pettingzoo:pettingzoo.classic.rps_v2"),
    (["nope.py:Game"], "no such file: nope.py"),
    (["game.games.pong:NoSuchClass"], "has no class named 'NoSuchClass'"),
    (["numpy_pong.py:NumpyPong"], "imports 'numpy', which the browser worker does not have"),
    ([PONG, "--ai", "nobody=random"], "no player 'nobody'; the players are left, right"),
    ([PONG, "--ai", "right=missing.py:Bot"], "--ai right=missing.py:Bot: no such file"),
    ([PONG, "--ai", "right=numpy_policy.py:Policy"], "--ai right: module numpy_policy imports 'numpy'"),
    ([PONG, "--ai", "right=random", "--keys", 'right={"w": 1}'], "'right' is played by the AI policy random"),
    ([PONG, "--keys", 'left={"w": 7}'], "'w' -> 7 is not an action"),
    ([PONG, "--config", '{"max_score": "many"}'], "cannot be built with config"),
    ([PONG, "--config", "[1]"], "--config must be a JSON object"),
    ([PONG, "--fps", "0"], "--fps must be from 1 to 240"),
    ([PONG, "--host", "0.0.0.0"], "add --allow-remote if you mean it"),
    ([PONG, "--pyodide-url", "ftp://example.org/pyodide/"], "--pyodide-url: 'ftp://example.org/pyodide/' is not"),
])
def test_bad_input_is_refused_with_a_clear_message_and_exit_code_2(folder: Path, argv: list[str],
                                                                    message: str) -> None:
    result = play(*argv, "--record", "--data", str(folder / "data"), cwd=folder)
    assert result.returncode == 2, result
    assert result.stderr.startswith("coplay play: ") and message in result.stderr, result.stderr
    assert not (folder / "data").exists(), "a refused play writes nothing"


def test_a_taken_port_is_refused_with_exit_code_2(folder: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = play(PONG, "--port", str(taken.getsockname()[1]), cwd=folder)
    assert result.returncode == 2 and "pick another --port" in result.stderr, result


@pytest.fixture(scope="module")
def recording_server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    server = Server(["play", PONG, "--ai", "right=random", "--record"], tmp_path_factory.mktemp("play") / "data")
    yield server
    server.stop()


def test_the_page_is_csp_strict_and_its_settings_name_seats_keys_and_the_worker_specs(
        recording_server: Server) -> None:
    page = requests.get(recording_server.url + "/", timeout=10)
    policy = page.headers["Content-Security-Policy"]
    scripts = next(part for part in policy.split("; ") if part.startswith("script-src"))
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert "<script" in page.text and "<script>" not in page.text, "scripts come from files only"
    settings = requests.get(recording_server.url + "/play.json", timeout=10).json()
    assert settings["players"] == ["left", "right"] and settings["game"] == PONG
    assert settings["keys"] == {"left": {"ArrowUp": 1, "ArrowDown": 2}}
    assert settings["worker_ai"] == {"right": "game.policies:RandomPolicy"} and settings["record"] is True
    bundle = requests.get(recording_server.url + "/bundle.json", timeout=10).json()
    assert "netcode/playground.py" in bundle["files"]


def test_record_takes_json_from_the_page_only(recording_server: Server) -> None:
    url = recording_server.url + "/record"
    records = [{"type": "episode", "episode": 0, "seed": 4}]
    body = json.dumps({"session": "abcdef012345", "records": records})
    plain = requests.post(url, data=body, headers={"Content-Type": "text/plain"}, timeout=10)
    assert plain.status_code == 400
    foreign = requests.post(url, data=body, timeout=10,
                            headers={"Content-Type": "application/json", "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    rebound = requests.post(url, json={"session": "abcdef012345", "records": records}, timeout=10,
                            headers={"Host": f"evil.example:{recording_server.port}"})
    assert rebound.status_code == 400 and "127.0.0.1 and localhost only" in rebound.json()["error"]
    assert requests.get(recording_server.url + "/play.json", headers={"Host": "evil.example"},
                        timeout=10).status_code == 400
    bad = requests.post(url, json={"session": "abcdef012345", "records": [{"type": "nope"}]}, timeout=10)
    assert bad.status_code == 400 and "not a recording record" in bad.json()["error"]
    recordings = recording_server.data_dir / "play" / "recordings"
    assert not recordings.exists() or not list(recordings.iterdir())
    good = requests.post(url, json={"session": "abcdef012345", "records": records}, timeout=10)
    assert good.status_code == 200, good.text
    [path] = recordings.iterdir()
    assert good.json()["recording"] == str(path)
    assert json.loads(path.read_text().splitlines()[1]) == records[0]


def test_without_record_nothing_can_be_written(tmp_path: Path) -> None:
    server = Server(["play", PONG], tmp_path / "data")
    try:
        answer = requests.post(server.url + "/record", timeout=10,
                               json={"session": "abcdef012345", "records": [{"type": "episode", "episode": 0,
                                                                             "seed": 1}]})
        assert answer.status_code == 404 and "--record" in answer.json()["error"]
    finally:
        server.stop()
    assert not (tmp_path / "data" / "play").exists()
