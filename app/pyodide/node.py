"""Run Python code in Pyodide under Node, with the project's `game` and `netcode` packages.

This is how CPython-side tools (tests, `coplay check-env --runtime pyodide`) execute the
exact code a participant's browser worker runs. Pyodide is loaded from the local
`node_modules/pyodide` (installed by `scripts/setup`), never from a CDN.

    with PyodideNode() as py:                      # boots Pyodide once (~3 s)
        py.call("game.hashing:state_hash", {"a": 0.1})
        py.run("import mygame; result = mygame.VALUE", files={"mygame.py": "VALUE = 1"})

Each `call` calls a function of a module that Pyodide can import (the bundled packages, or
`files`) and returns its JSON-decoded value; each `run` executes a snippet in a fresh
namespace and returns the JSON-decoded value of its `result` variable (for tests). Files go under /home/pyodide/coplay, which is on `sys.path`;
imported modules stay imported between snippets. Values cross as JSON text written by
Python's `json.dumps`, so big ints and exact float bits survive and no PyProxy leaks.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from app.pyodide.bundle import BUNDLED_PACKAGES as PACKAGES
from app.pyodide.bundle import REPO_ROOT, package_files
from app.pyodide.host import ROOT as HOST_ROOT
from app.pyodide.packages import PackageSource
from game.errors import CoplayError

RUNNER = Path(__file__).resolve().parent / "runner.mjs"
SETUP_HINT = "run the project's setup, `scripts/setup`, which installs Pyodide 0.27.7 from npm into node_modules/"


class PyodideUnavailable(CoplayError, RuntimeError):
    """Node or the local Pyodide package is missing, or Pyodide failed to boot."""

    code = "pyodide_unavailable"


class PyodideTimeout(CoplayError, TimeoutError):
    """Pyodide did not answer in time; the Node process has been stopped."""

    code = "pyodide_timeout"


class PyodideError(CoplayError, RuntimeError):
    """The Python code raised inside Pyodide. `traceback` holds the Pyodide-side traceback."""

    code = "pyodide_raised"

    def __init__(self, error: str, traceback: str, stdout: str = "") -> None:
        self.error = error
        self.traceback = traceback
        self.stdout = stdout
        super().__init__(f"{error}\n\nTraceback from Pyodide:\n{traceback.rstrip()}")


def node_executable() -> str | None:
    """Path of `node` on PATH, or None."""
    return shutil.which("node")


def node_modules_dir() -> Path:
    """Where `scripts/setup` installs the npm packages: $COPLAY_NODE_MODULES or <repo>/node_modules."""
    return Path(os.environ.get("COPLAY_NODE_MODULES") or REPO_ROOT / "node_modules")


def pyodide_dir() -> Path:
    """The local Pyodide distribution: $COPLAY_PYODIDE_DIR or <node_modules>/pyodide."""
    return Path(os.environ.get("COPLAY_PYODIDE_DIR") or node_modules_dir() / "pyodide")


class PyodideNode:
    """One Node process running Pyodide, answering snippets one at a time.

    Boots on first use (or `start()`); `close()` (or leaving a `with` block) stops it.
    The `game` and `netcode` sources are written into Pyodide's file system at start
    unless `packages=False`; `files` ({relative path: text}) are written too.
    After a timeout or a crash the process is gone and further calls raise.
    """

    def __init__(
        self, files: dict[str, str] | None = None, *, packages: bool = True,
        timeout: float = 120, boot_timeout: float = 120,
    ) -> None:
        self.timeout = timeout
        self.boot_timeout = boot_timeout
        self._initial_files = {**(package_files() if packages else {}), **(files or {})}
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str | None] = deque(maxlen=200)
        self._pumps: list[threading.Thread] = []
        self._next_id = 0
        self._closed = False
        self.version = ""
        self.boot_seconds = 0.0      # Node start + loadPyodide, as measured by Node
        self.load_seconds = 0.0      # writing the initial files and importing game, netcode
        self.last_stdout = ""        # what the last snippet printed

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> PyodideNode:
        """Start Node, boot Pyodide and load the packages (idempotent)."""
        if self._proc is not None:
            return self
        if self._closed:
            raise PyodideUnavailable("this PyodideNode was closed; make a new one")
        node = node_executable()
        if node is None:
            raise PyodideUnavailable("`node` is not on PATH; install Node.js 18+ to run code in Pyodide")
        folder = pyodide_dir()
        if not (folder / "pyodide.mjs").is_file():
            raise PyodideUnavailable(f"Pyodide is not installed at {folder}; {SETUP_HINT}")
        self._proc = subprocess.Popen(
            [node, str(RUNNER), str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1,
        )
        self._pumps = [
            threading.Thread(target=self._pump, args=(self._proc.stdout, self._lines.put), daemon=True),
            threading.Thread(target=self._pump, args=(self._proc.stderr, self._stderr.append), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()
        try:
            hello = self._read_line(self.boot_timeout, "booting Pyodide")
            if not hello.get("ready"):
                raise PyodideUnavailable(f"Pyodide failed to boot from {folder}: {hello.get('error')}")
            self.version = hello.get("version", "")
            self.boot_seconds = hello.get("boot_ms", 0) / 1000
            start = time.perf_counter()
            imports = ", ".join(p for p in PACKAGES if f"{p}/__init__.py" in self._initial_files)
            self.run(f"import {imports}" if imports else "", files=self._initial_files, result=None)
            self.load_seconds = time.perf_counter() - start
        except BaseException:
            self.close()
            raise
        return self

    def close(self, kill: bool = False) -> None:
        """Stop the Node process: close its stdin so it exits on its own, or kill it (`kill`)."""
        self._closed = True
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pump in self._pumps:
            pump.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> PyodideNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running code --------------------------------------------------------------

    def run(
        self, code: str, files: dict[str, str] | None = None, *, result: str | None = "result",
        timeout: float | None = None,
    ) -> Any:
        """Write `files`, exec `code` in a fresh namespace, return the JSON-decoded `result` variable.

        Returns None when `result` is None or the snippet did not set it. Raises
        `PyodideError` (with the Pyodide traceback) if the snippet raised, and
        `PyodideTimeout` if no answer came within `timeout` seconds.
        """
        return self._request({"files": files or {}, "code": code, "result": result}, timeout)

    def load_bundle(self, bundle: dict[str, Any], source: PackageSource | None = None) -> None:
        """Load a game bundle (app/pyodide/bundle.py) as the browser worker's LOAD does: install its
        packages (wheels from `source.folder`), write its files, put its paths on sys.path."""
        folder = source.folder if source else None
        wheels = [str(folder / w["url"].rpartition("/")[2]) for w in bundle.get("wheels", []) if folder]
        self._request({"files": bundle["files"], "call": "netcode.worker_glue:load",
                       "args": [HOST_ROOT, json.dumps(bundle.get("paths") or [])],
                       "packages": bundle.get("packages") or [], "wheels": wheels}, None)

    def call(
        self, function: str, *args: Any, files: dict[str, str] | None = None, timeout: float | None = None,
    ) -> Any:
        """Write `files`, call `function` ("package.module:name", importable in Pyodide) with the
        JSON-able `args`, and return its JSON-decoded value; raises as `run` does."""
        return self._request({"files": files or {}, "call": function, "args": list(args)}, timeout)

    def _request(self, request: dict[str, Any], timeout: float | None) -> Any:
        if self._proc is None:
            self.start()
        assert self._proc is not None and self._proc.stdin is not None
        self._next_id += 1
        request = {"id": self._next_id, **request}
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except OSError as exc:
            raise self._died(f"could not send to the Node process ({exc})") from exc
        answer = self._read_line(self.timeout if timeout is None else timeout, "running a snippet")
        if answer.get("id") != self._next_id:
            self.close()
            raise PyodideUnavailable(f"Pyodide answered out of turn: {answer.get('error') or answer}")
        self.last_stdout = answer.get("stdout", "")
        if not answer.get("ok"):
            raise PyodideError(answer.get("error", "unknown error"), answer.get("traceback", ""), self.last_stdout)
        return answer.get("value")

    def _read_line(self, timeout: float, doing: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close(kill=True)
            raise PyodideTimeout(f"Pyodide gave no answer within {timeout:g} s while {doing}; Node was stopped") from None
        if line is None:
            raise self._died(f"the Node process ended while {doing}")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise self._died(f"Node wrote a line that is not JSON while {doing}: {line[:200]!r}") from None

    def _died(self, what: str) -> PyodideUnavailable:
        proc = self._proc
        self.close()
        code = proc.returncode if proc else None
        tail = "\n".join(line for line in list(self._stderr)[-30:] if line is not None)
        return PyodideUnavailable(f"{what} (exit code {code}). Node's stderr:\n{tail}")

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        """Forward lines from a pipe to `sink`, then None (end of stream)."""
        try:
            for line in stream:
                sink(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        sink(None)


def run_in_pyodide(code: str, files: dict[str, str] | None = None, timeout: float = 120) -> Any:
    """One-shot: boot Pyodide with `game` and `netcode` (+ `files`), run `code`, return its `result`."""
    with PyodideNode(files, timeout=timeout) as py:
        return py.run(code)
