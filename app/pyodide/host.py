"""The Python side of app/pyodide/runner.mjs: answers one request line at a time inside Pyodide.

runner.mjs runs this file in Pyodide's globals, calls `setup()` once, then `handle(line)` for
each request and writes the returned line. A request writes `files` under ROOT (on `sys.path`),
then either calls `call` ("package.module:function") with `args`, or execs `code` in a fresh
namespace and answers its `result` variable. Modules stay imported between requests. The answer
is written by `json.dumps` here, so no PyProxy is created and big ints and exact float bits
never pass through JavaScript numbers. Stdlib only; it also runs in CPython (tests).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import time
import traceback
from typing import Any

ROOT = "/home/pyodide/coplay"


def setup(root: str = ROOT) -> None:
    """Create `root` and put it first on sys.path."""
    global ROOT
    ROOT = root
    os.makedirs(ROOT, exist_ok=True)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)


def handle(line: str) -> str:
    """Answer one request line with one answer line (see runner.mjs for the protocol)."""
    request = json.loads(line)
    answer: dict[str, Any] = {"id": request.get("id")}
    out = io.StringIO()
    start = time.perf_counter()
    try:
        _write_files(request.get("files") or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            value = _call(request["call"], request.get("args") or []) if request.get("call") else _exec(request)
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the answer ({request.get('call') or request.get('result')!r}) is not JSON-able: "
                            f"{exc}") from None
        answer.update(ok=True, stdout=out.getvalue(), ms=(time.perf_counter() - start) * 1000)
        return json.dumps(answer)[:-1] + ', "value": ' + text + "}"
    except BaseException as exc:
        answer.update(ok=False, error=f"{type(exc).__name__}: {exc}", traceback=_traceback(exc),
                      stdout=out.getvalue(), ms=(time.perf_counter() - start) * 1000)
        return json.dumps(answer)


def _traceback(exc: BaseException) -> str:
    """The traceback from the caller's code on (this module's own frames left out)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_globals is globals():
        tb = tb.tb_next
    return "".join(traceback.format_exception(exc.with_traceback(tb)))


def _write_files(files: dict[str, str]) -> None:
    for rel, text in files.items():
        target = os.path.normpath(os.path.join(ROOT, rel))
        if not target.startswith(ROOT + "/"):
            raise ValueError(f"file path {rel!r} leaves {ROOT}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
    if files:
        importlib.invalidate_caches()


def _call(target: str, args: list[Any]) -> Any:
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)(*args)


def _exec(request: dict[str, Any]) -> Any:
    namespace: dict[str, Any] = {"__name__": "__coplay__"}
    exec(compile(request.get("code") or "", "<coplay snippet>", "exec"), namespace)
    name = request.get("result")
    return namespace.get(name) if name else None
