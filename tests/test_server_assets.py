"""What the page loads from the real server (a subprocess): /bundle.json, /config.json, the
self-hosted Pyodide and the Socket.IO client, and the 503 that says to run setup without them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from app.participant.headless import HeadlessParticipant
from tests.server_fixtures import ROOT, Server, pid

GAME = '''
from game.games.pong import Pong


class ShortPong(Pong):
    def __init__(self, config=None):
        super().__init__({"max_score": 1, "max_frames": 60, **(config or {})})
'''

EXPERIMENT = '''
from scenes import End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="assets", scenes=[
    Match(id="pong", game="short_pong.py:ShortPong", humans=("left", "right"),
          waiting_room=WaitingRoom(timeout_s=1, on_timeout="ai")),
    End(id="end", html="<p>Thanks</p>"),
])
'''

NODE_MODULES = ROOT / "node_modules"


def write_experiment(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "short_pong.py").write_text(GAME)
    (folder / "experiment.py").write_text(EXPERIMENT)
    return folder / "experiment.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("assets")
    running = Server(["serve", str(write_experiment(folder / "study"))], folder / "data")
    yield running
    running.stop()


def get(server: Server, path: str, **options: Any) -> requests.Response:
    return requests.get(server.url + path, timeout=30, **options)


# ----------------------------------------------------------------------------- the bundle


def test_bundle_json_names_the_game_as_match_start_does(server: Server) -> None:
    response = get(server, "/bundle.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Content-Encoding"] == "gzip"   # requests accepts gzip
    assert "no-cache" in response.headers["Cache-Control"] and response.headers["ETag"]
    bundle = response.json()
    assert "netcode/client.py" in bundle["files"] and "game/games/pong.py" in bundle["files"]
    assert bundle["files"]["user/0/short_pong.py"] == GAME
    assert bundle["paths"] == [".", "user/0"] and bundle["packages"] == [] == bundle["wheels"]
    # match_start.game is a key of bundle.games: play a match and look
    starts: list[dict[str, Any]] = []
    participant = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=1,
                                      on_event=lambda name, payload: starts.append(payload)
                                      if name == "match_start" else None)
    result = participant.run(60)
    assert result.completed and result.ok, result.to_json()
    assert starts and all(bundle["games"][s["game"]] == "short_pong:ShortPong" for s in starts)


def test_bundle_json_revalidates_by_etag_and_serves_plain_json_too(server: Server) -> None:
    first = get(server, "/bundle.json", headers={"Accept-Encoding": "identity"})
    assert first.status_code == 200 and "Content-Encoding" not in first.headers
    assert first.headers["Vary"] == "Accept-Encoding"
    assert json.loads(first.content) == get(server, "/bundle.json").json()
    again = get(server, "/bundle.json", headers={"Accept-Encoding": "identity", "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and not again.content
    zipped = get(server, "/bundle.json")
    assert zipped.headers["ETag"] != first.headers["ETag"]   # one ETag per encoding
    assert get(server, "/bundle.json", headers={"If-None-Match": zipped.headers["ETag"]}).status_code == 304


def test_config_json_points_to_the_self_hosted_pyodide_by_default(server: Server) -> None:
    response = get(server, "/config.json")
    version = json.loads((NODE_MODULES / "pyodide" / "package.json").read_text())["version"]
    assert response.status_code == 200 and response.json() == {"pyodide_url": f"/static/vendor/pyodide@{version}/"}
    assert "no-cache" in response.headers["Cache-Control"]


# ----------------------------------------------------------------------------- vendored files


@pytest.mark.parametrize("name, mime", [
    ("pyodide.mjs", "text/javascript"),
    ("pyodide.asm.js", "text/javascript"),
    ("pyodide.asm.wasm", "application/wasm"),
    ("python_stdlib.zip", "application/zip"),
    ("pyodide-lock.json", "application/json"),
])
def test_pyodide_files_are_served_with_their_mime_types_and_long_caching(server: Server, name: str,
                                                                          mime: str) -> None:
    with get(server, f"/static/vendor/pyodide/{name}", stream=True, headers={"Accept-Encoding": "identity"}) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].split(";")[0] == mime
        assert int(response.headers["Content-Length"]) == (NODE_MODULES / "pyodide" / name).stat().st_size
        cache = response.headers["Cache-Control"]
        assert "public" in cache and "max-age=604800" in cache
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        head = next(response.iter_content(4, decode_unicode=False))
    if name.endswith(".wasm"):
        assert head == b"\0asm"


def test_pyodide_mjs_is_the_installed_one(server: Server) -> None:
    response = get(server, "/static/vendor/pyodide/pyodide.mjs")
    assert response.content == (NODE_MODULES / "pyodide" / "pyodide.mjs").read_bytes()
    assert "loadPyodide" in response.text


@pytest.mark.parametrize("path", [
    "/static/vendor/pyodide/no-such-file.js",
    "/static/vendor/pyodide/..%2F..%2Fpackage.json",
    "/static/vendor/pyodide/%2E%2E/socket.io-client/package.json",
    "/static/vendor/socket.io.js",
])
def test_nothing_else_is_served_from_node_modules(server: Server, path: str) -> None:
    assert get(server, path).status_code == 404


def test_the_socket_io_client_is_served(server: Server) -> None:
    response = get(server, "/static/vendor/socket.io.min.js", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == "text/javascript"
    dist = NODE_MODULES / "socket.io-client" / "dist"
    assert response.content == (dist / "socket.io.min.js").read_bytes()
    assert "Socket.IO v4.8" in response.text[:200]
    source_map = get(server, "/static/vendor/socket.io.min.js.map")
    assert source_map.status_code == 200 and source_map.headers["Content-Type"].startswith("application/json")


# ----------------------------------------------------------------------------- options and missing packages


def test_pyodide_url_option_reaches_config_json_and_node_modules_can_be_missing(tmp_path: Path) -> None:
    """Without node_modules the server still starts; the vendor routes say to run scripts/setup."""
    empty = tmp_path / "no-node-modules"
    empty.mkdir()
    experiment = write_experiment(tmp_path / "study")
    server = Server(["serve", str(experiment), "--pyodide-url", "https://cdn.example.org/pyodide/v0.27.7/full"],
                    tmp_path / "data", env={"COPLAY_NODE_MODULES": str(empty), "COPLAY_PYODIDE_DIR": ""})
    try:
        assert get(server, "/config.json").json() == {"pyodide_url": "https://cdn.example.org/pyodide/v0.27.7/full/"}
        for path in ("/static/vendor/pyodide/pyodide.mjs", "/static/vendor/socket.io.min.js"):
            response = get(server, path)
            assert response.status_code == 503, path
            assert "scripts/setup" in response.text and "not installed" in response.text
            assert response.headers["Cache-Control"] == "no-store"
        assert get(server, "/bundle.json").status_code == 200
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "warning: not installed: " in log and "Socket.IO client" in log and "scripts/setup" in log
    assert "Pyodide (" not in log   # browsers load it from --pyodide-url


def test_a_bad_pyodide_url_is_refused_by_the_command_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli", "serve", str(write_experiment(tmp_path)),
                           "--pyodide-url", "cdn/pyodide", "--async-mode", "threading"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not a Pyodide index URL" in done.stderr
