"""One error base: every exception class of the project derives from `CoplayError` and has a code."""
from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from pathlib import Path

import pytest

from game.errors import CoplayError

PACKAGES = ("app", "game", "netcode", "scenes")
# Exceptions used for control flow, never shown to anyone: not errors.
CONTROL_FLOW = {"app.participant.result._Finished"}
# Loaded only by an eventlet server after it monkey-patched; importing it here would load eventlet unpatched
# into the test process (test_server_e2e checks it never is). It defines no exception class.
GREEN_ONLY = {"app.web.channel_pump"}


def exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in a module of PACKAGES (each module imported)."""
    found: list[type[BaseException]] = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.rpartition(".")[2] == "__main__" or info.name in GREEN_ONLY:
                continue
            module = importlib.import_module(info.name)
            found += [value for value in vars(module).values() if inspect.isclass(value)
                      and issubclass(value, BaseException) and value.__module__ == module.__name__]
    return sorted(set(found), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def test_every_exception_class_derives_from_coplay_error_and_has_a_code() -> None:
    classes = exception_classes()
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in classes}
    assert "netcode.errors.NetcodeError" in names and "game.loader.LoadError" in names
    assert CONTROL_FLOW <= names, "a control-flow exception in the allow-list no longer exists"
    for cls in classes:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name in CONTROL_FLOW:
            continue
        assert issubclass(cls, CoplayError), f"{name} does not derive from game.errors.CoplayError"
        assert isinstance(cls.code, str) and cls.code, f"{name} has no code"
        if cls is not CoplayError:
            assert "code" in vars(cls), f"{name} does not set its own code"


def test_codes_are_distinct() -> None:
    classes = [cls for cls in exception_classes() if issubclass(cls, CoplayError)]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(codes)


def test_a_raise_may_name_a_more_precise_code() -> None:
    from game.checks import EnvCheckError
    from netcode.errors import NetcodeError

    assert CoplayError("boom").code == "coplay_error"
    error = CoplayError("the file is gone; create it", code="no_such_file")
    assert (error.code, error.message, str(error)) == ("no_such_file", "the file is gone; create it",
                                                       "the file is gone; create it")
    assert pickle.loads(pickle.dumps(error)).code == "no_such_file"
    check = EnvCheckError("nondeterministic", "two runs differ")
    assert (check.code, check.message, check.exit_code) == ("nondeterministic", "two runs differ", 1)
    assert NetcodeError("invalid_packet", "bad").code == "invalid_packet"


def test_builtin_bases_are_kept_for_callers_that_catch_them() -> None:
    from app.analysis.frames import UnknownMatch
    from app.pyodide.node import PyodideTimeout
    from game.hashing import StateEncodingError
    from scenes.errors import AnswerError, ExperimentError

    assert issubclass(ExperimentError, ValueError) and issubclass(AnswerError, ValueError)
    assert issubclass(UnknownMatch, LookupError) and issubclass(PyodideTimeout, TimeoutError)
    assert issubclass(StateEncodingError, TypeError)


def test_the_cli_prints_a_coplay_error_once_with_its_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["replay", str(empty)]) == 2
    assert capsys.readouterr().err == f"coplay replay: {empty}: no header line; the match's process died before " \
        "writing it\n"
    assert main(["simulate", f"{tmp_path}/nope.py:Game"]) == 2
    assert capsys.readouterr().out == f"coplay simulate: no such file: {tmp_path}/nope.py\n"
    assert main(["serve", str(tmp_path / "none.py")]) == 2
    assert capsys.readouterr().err == f"coplay serve: no such file: {tmp_path / 'none.py'}\n"
