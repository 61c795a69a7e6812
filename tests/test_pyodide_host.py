"""app/pyodide/host.py, the Python side of the Node runner, exercised in CPython."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.pyodide import host


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(host, "ROOT", host.ROOT)
    host.setup(str(tmp_path))
    yield tmp_path
    sys.modules.pop("host_test_mod", None)


def ask(**request: object) -> dict:
    return json.loads(host.handle(json.dumps({"id": 1, **request})))


def test_a_call_runs_a_function_of_a_module_and_answers_its_value(root: Path) -> None:
    answer = ask(call="game.hashing:state_hash", args=[{"a": 0.1}])
    assert answer["ok"] and answer["id"] == 1
    from game.hashing import state_hash
    assert answer["value"] == state_hash({"a": 0.1})


def test_files_are_written_under_the_root_and_importable(root: Path) -> None:
    files = {"host_test_mod.py": "def twice(x):\n    print('twice', x)\n    return [x, x, 2**70]\n"}
    answer = ask(files=files, call="host_test_mod:twice", args=[3])
    assert answer["value"] == [3, 3, 2**70] and answer["stdout"] == "twice 3\n"
    assert (root / "host_test_mod.py").is_file()


def test_a_snippet_answers_its_result_variable(root: Path) -> None:
    assert ask(code="result = {'n': 2**70, 'x': -0.0}", result="result")["value"] == {"n": 2**70, "x": -0.0}
    assert ask(code="x = 1", result=None)["value"] is None


def test_errors_carry_the_traceback_from_the_callers_code(root: Path) -> None:
    files = {"host_test_mod.py": "def boom():\n    return 1 / 0\n"}
    answer = ask(files=files, call="host_test_mod:boom")
    assert not answer["ok"] and answer["error"] == "ZeroDivisionError: division by zero"
    assert 'host_test_mod.py", line 2, in boom' in answer["traceback"]
    assert "host.py" not in answer["traceback"]
    assert "leaves" in ask(files={"../outside.py": ""}, code="")["error"]
    assert "is not JSON-able" in ask(code="result = object()", result="result")["error"]
