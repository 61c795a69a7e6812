"""Precompressed vendor files: made once by set-up (app/web/precompress.py), served by the real server
with the encoding the request accepts, and still booting Pyodide in real Chromium."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import brotli
import pytest
import requests

from app.web.precompress import precompress
from tests.browser_fixtures import Participant
from tests.server_fixtures import ROOT, Server, pid

NODE_MODULES = ROOT / "node_modules"
PYODIDE = NODE_MODULES / "pyodide"
SOCKET_IO_DIST = NODE_MODULES / "socket.io-client" / "dist"
VERSION = json.loads((PYODIDE / "package.json").read_text())["version"]
WASM = f"/static/vendor/pyodide@{VERSION}/pyodide.asm.wasm"


def linked_node_modules(folder: Path) -> Path:
    """A node_modules/ of links to the installed packages, so its copies go to `folder`, not the checkout."""
    modules = folder / "node_modules"
    (modules / "socket.io-client").mkdir(parents=True)
    (modules / "pyodide").symlink_to(PYODIDE)
    (modules / "socket.io-client" / "dist").symlink_to(SOCKET_IO_DIST)
    return modules


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A demo server whose node_modules has brotli and gzip copies (brotli quality 5: fast to make)."""
    folder = tmp_path_factory.mktemp("compressed")
    modules = linked_node_modules(folder)
    copies = folder / "node_modules.precompressed"
    precompress(modules / "pyodide", copies / "pyodide", brotli_quality=5)
    precompress(modules / "socket.io-client" / "dist", copies / "socket.io", ["socket.io.min.js"], brotli_quality=5)
    server = Server(["demo"], folder / "data", env={"COPLAY_NODE_MODULES": str(modules)})
    yield server
    server.stop()


def get(server: Server, path: str, accept: str, **headers: str) -> requests.Response:
    # stream=True: requests must not decode the body, the test compares the encoded bytes
    response = requests.get(server.url + path, headers={"Accept-Encoding": accept, **headers}, timeout=30, stream=True)
    response.raw.decode_content = False
    response._content = response.raw.read()
    return response


def decoded(response: requests.Response) -> bytes:
    encoding = response.headers.get("Content-Encoding")
    if encoding == "br":
        return bytes(brotli.decompress(response.content))
    return gzip.decompress(response.content) if encoding == "gzip" else response.content


@pytest.mark.parametrize("accept, expected", [
    ("gzip, deflate, br, zstd", "br"),      # Chromium's header
    ("br", "br"),
    ("gzip", "gzip"),
    ("br;q=0.5, gzip", "gzip"),              # the client's preference wins over ours
    ("*", "br"),
    ("identity", None),
    ("br;q=0, gzip;q=0", None),
    ("deflate", None),
])
def test_the_best_accepted_encoding_is_sent_with_its_headers(compressed: Server, accept: str,
                                                             expected: str | None) -> None:
    response = get(compressed, WASM, accept)
    assert response.status_code == 200
    assert response.headers.get("Content-Encoding") == expected
    assert response.headers["Content-Type"] == "application/wasm"   # so the browser still stream-compiles it
    assert "Accept-Encoding" in response.headers["Vary"]
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert decoded(response) == (PYODIDE / "pyodide.asm.wasm").read_bytes()
    if expected is not None:
        assert len(response.content) < (PYODIDE / "pyodide.asm.wasm").stat().st_size * 0.4


def test_versioned_urls_are_immutable_and_unversioned_ones_revalidate(compressed: Server) -> None:
    versioned = get(compressed, f"/static/vendor/pyodide@{VERSION}/pyodide.mjs", "br")
    cache = versioned.headers["Cache-Control"]
    assert "immutable" in cache and "max-age=31536000" in cache and "public" in cache
    plain = get(compressed, "/static/vendor/pyodide/pyodide.mjs", "br")
    assert plain.headers["Content-Encoding"] == "br" and "immutable" not in plain.headers["Cache-Control"]
    assert "max-age=604800" in plain.headers["Cache-Control"]
    assert get(compressed, "/static/vendor/pyodide@0.0.1/pyodide.mjs", "br").status_code == 404
    assert get(compressed, f"/static/vendor/pyodide@{VERSION}/..%2Fsocket.io-client/package.json", "br"
               ).status_code == 404
    assert requests.get(compressed.url + "/config.json", timeout=10).json() == {
        "pyodide_url": f"/static/vendor/pyodide@{VERSION}/"}
    socket_io = get(compressed, "/static/vendor/socket.io.min.js", "gzip, br")
    assert socket_io.headers["Content-Encoding"] == "br"
    assert decoded(socket_io) == (SOCKET_IO_DIST / "socket.io.min.js").read_bytes()


def test_etags_and_ranges_are_per_encoding(compressed: Server) -> None:
    tags = {}
    for accept in ("br", "gzip", "identity"):
        first = get(compressed, WASM, accept)
        tags[accept] = first.headers["ETag"]
        again = get(compressed, WASM, accept, **{"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and not again.content
        part = get(compressed, WASM, accept, Range="bytes=100-199")
        assert part.status_code == 206 and part.content == first.content[100:200]
        assert part.headers.get("Content-Encoding") == first.headers.get("Content-Encoding")
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(first.content)}"
    assert len(set(tags.values())) == 3
    # a brotli ETag does not validate the gzip body
    assert get(compressed, WASM, "gzip", **{"If-None-Match": tags["br"]}).status_code == 200


def test_missing_or_stale_copies_fall_back_to_gzip_then_identity(tmp_path: Path) -> None:
    modules = tmp_path / "node_modules"
    (modules / "pyodide").mkdir(parents=True)
    for name in ("pyodide.mjs", "pyodide-lock.json", "package.json"):
        (modules / "pyodide" / name).write_bytes((PYODIDE / name).read_bytes())
    (modules / "socket.io-client").mkdir()
    (modules / "socket.io-client" / "dist").symlink_to(SOCKET_IO_DIST)
    copies = tmp_path / "node_modules.precompressed" / "pyodide"
    precompress(modules / "pyodide", copies)
    (copies / "pyodide.mjs.br").unlink()                     # e.g. set-up ran without the brotli package
    os.utime(modules / "pyodide" / "pyodide-lock.json", ns=(0, 10**18))   # an npm upgrade after set-up
    server = Server(["demo"], tmp_path / "data", env={"COPLAY_NODE_MODULES": str(modules)})
    try:
        mjs = get(server, "/static/vendor/pyodide/pyodide.mjs", "gzip, br")
        assert mjs.headers["Content-Encoding"] == "gzip" and decoded(mjs) == (PYODIDE / "pyodide.mjs").read_bytes()
        lock = get(server, "/static/vendor/pyodide/pyodide-lock.json", "gzip, br")
        assert "Content-Encoding" not in lock.headers and lock.content == (PYODIDE / "pyodide-lock.json").read_bytes()
        socket_io = get(server, "/static/vendor/socket.io.min.js", "gzip, br")
        assert "Content-Encoding" not in socket_io.headers and "Accept-Encoding" in socket_io.headers["Vary"]
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert log.count("no precompressed copies of socket.io") == 1 and "scripts/setup" in log
    assert "copies of pyodide" not in log


def test_the_setup_step_is_idempotent_and_remakes_only_stale_copies(tmp_path: Path) -> None:
    modules = tmp_path / "node_modules"
    (modules / "pyodide").mkdir(parents=True)
    for name in ("pyodide.mjs", "pyodide-lock.json", "package.json", "python_stdlib.zip"):
        (modules / "pyodide" / name).write_bytes(b"x" * 2000 if name.endswith(".zip") else (PYODIDE / name).read_bytes())
    (modules / "socket.io-client").mkdir()
    (modules / "socket.io-client" / "dist").symlink_to(SOCKET_IO_DIST)

    def setup_step() -> str:
        done = subprocess.run([sys.executable, "-m", "app.web.precompress"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "COPLAY_NODE_MODULES": str(modules)})
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = setup_step()
    assert "pyodide: 6 copies made" in first and "socket.io: 4 copies made" in first
    copies = tmp_path / "node_modules.precompressed"
    made = {path: path.stat().st_mtime_ns for path in copies.rglob("*")}
    assert not any(path.name.startswith("python_stdlib.zip") for path in made)   # zip gains nothing
    assert not any(path.name.endswith(".tmp") for path in made)
    assert setup_step() == "precompress: pyodide: up to date\nprecompress: socket.io: up to date\n"
    assert {path: path.stat().st_mtime_ns for path in copies.rglob("*")} == made
    (modules / "pyodide" / "pyodide.mjs").write_text("export const changed = 1;\n" * 100)
    assert "pyodide: 2 copies made" in setup_step()
    assert gzip.decompress((copies / "pyodide" / "pyodide.mjs.gz").read_bytes()).startswith(b"export const changed")


def test_chromium_boots_pyodide_from_the_compressed_files(browser: Any, compressed: Server) -> None:
    context = browser.new_context()
    encodings: dict[str, str | None] = {}
    context.on("response", lambda response: encodings.__setitem__(
        response.url.rpartition("/")[2], response.headers.get("content-encoding")))
    participant = Participant(context.new_page(), context)
    participant.page.on("pageerror", lambda error: participant.console_errors.append(str(error)))
    try:
        participant.page.goto(f"{compressed.url}/?PROLIFIC_PID={pid()}")
        participant.wait_for(lambda s: s.get("worker", {}).get("ready"), 120, "Pyodide to be ready in the worker")
        assert participant.console_errors == []
    finally:
        participant.close()
    assert encodings.get("pyodide.asm.wasm") == "br" and encodings.get("pyodide.asm.js") == "br"
    assert encodings.get("socket.io.min.js") == "br"
