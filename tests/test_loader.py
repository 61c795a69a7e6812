"""game/loader.py: one loader for every spec form, cached and thread-safe."""
from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from game import loader
from game.games.pong import Pong
from game.loader import (
    GameLoader,
    LoadError,
    absolute_spec,
    class_from_source,
    import_class,
    load_class,
    parse_config,
)

GAME = "from game.games.pong import Pong\n\n\nclass MyPong(Pong):\n    IMPORTS = []\n"
COUNTING = "import counter_helper\ncounter_helper.COUNT.append(1)\n\n\nclass Counted:\n    pass\n"


@pytest.fixture(autouse=True)
def _restore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))   # a FILE.py game's folder goes on sys.path
    yield
    for name in ("counter_helper", "coplay_user_counted", "coplay_user_mine"):   # what the tests imported
        sys.modules.pop(name, None)


def test_module_specs_load_the_class() -> None:
    assert load_class("game.games.pong:Pong") is Pong
    assert import_class("game.games.pong:Pong") is Pong


def test_a_file_loads_once_relative_to_a_base_folder(tmp_path: Path) -> None:
    (tmp_path / "counter_helper.py").write_text("COUNT = []\n")
    (tmp_path / "counted.py").write_text(COUNTING)
    first = load_class("counted.py:Counted", str(tmp_path))
    assert first is load_class(f"{tmp_path}/counted.py:Counted")      # the same file: the same class
    assert first is GameLoader(str(tmp_path))("counted.py:Counted")
    assert sys.modules["counter_helper"].COUNT == [1]                  # imported once
    assert first.__module__ == "coplay_user_counted"
    assert inspect.getsource(sys.modules[first.__module__]) == COUNTING


def test_a_file_whose_module_was_replaced_is_imported_again(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(GAME)
    first = load_class(f"{tmp_path}/mine.py:MyPong")
    del sys.modules["coplay_user_mine"]
    second = load_class(f"{tmp_path}/mine.py:MyPong")
    assert second is not first and sys.modules["coplay_user_mine"].MyPong is second


def test_threads_asking_at_once_get_one_class(tmp_path: Path) -> None:
    (tmp_path / "counter_helper.py").write_text("COUNT = []\n")
    (tmp_path / "counted.py").write_text(COUNTING)
    found: list[type] = []
    threads = [threading.Thread(target=lambda: found.append(load_class(f"{tmp_path}/counted.py:Counted")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1
    assert sys.modules["counter_helper"].COUNT == [1]


def test_absolute_specs_as_the_server_sends_them(tmp_path: Path) -> None:
    assert absolute_spec("mine.py:MyPong", str(tmp_path)) == f"{tmp_path}/mine.py:MyPong"
    assert absolute_spec("/abs/mine.py:MyPong", str(tmp_path)) == "/abs/mine.py:MyPong"
    assert absolute_spec("game.games.pong:Pong", str(tmp_path)) == "game.games.pong:Pong"
    assert absolute_spec(Pong) == "game.games.pong:Pong"
    assert GameLoader(None)(Pong) is Pong


def test_recorded_source_builds_the_class_once() -> None:
    cls = class_from_source(GAME, "somewhere/mine.py:MyPong")
    assert cls.__name__ == "MyPong" and issubclass(cls, Pong)
    assert class_from_source(GAME, "elsewhere.py:MyPong") is cls
    assert cls.__module__ not in sys.modules


@pytest.mark.parametrize(("spec", "message"), [
    ("no_colon", "is not of the form FILE.py:Class or package.module:Class"),
    ("missing_file.py:Game", "no such file: missing_file.py"),
    ("game.no_such_module:Game", "cannot import module 'game.no_such_module'"),
    ("game.games.pong:NoSuchClass", "game.games.pong has no class named 'NoSuchClass'"),
])
def test_load_errors_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(LoadError, match=message.replace(".", r"\.")):
        load_class(spec)


def test_errors_of_the_other_forms(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise ValueError('bad level')\n")
    with pytest.raises(LoadError, match="importing .*broken.py failed: ValueError: bad level"):
        load_class(f"{tmp_path}/broken.py:Game")
    assert "coplay_user_broken" not in sys.modules
    with pytest.raises(LoadError, match="is not of the form package.module:Class"):
        import_class("game.py:Game")
    with pytest.raises(LoadError, match="the recorded source defines no class 'Other'"):
        class_from_source(GAME, "mine.py:Other")
    with pytest.raises(LoadError, match="the recorded source of mine.py:X failed: SyntaxError"):
        class_from_source("def (:\n", "mine.py:X")
    with pytest.raises(LoadError, match="--config must be a JSON object"):
        parse_config("[1]")


def test_adapter_specs_plug_in_by_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def adapter(rest: str) -> type:
        calls.append(rest)
        return load_class("game.games.pong:Pong")   # an adapter may load the spec it wraps

    monkeypatch.setitem(loader.ADAPTERS, "fake", adapter)
    monkeypatch.setattr(loader, "_cache", {})
    assert load_class("fake:game/games/pong.py:Pong") is Pong
    assert load_class("fake:game/games/pong.py:Pong") is Pong
    assert calls == ["game/games/pong.py:Pong"]
