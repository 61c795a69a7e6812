"""The one game loader: a spec string -> the game class, for every caller and runtime.

Spec forms (the same strings everywhere: check-env, simulate, replay --game, `Match(game=...)`):

- `FILE.py:Class`: the class from a file. A relative path is taken from `base_dir` when one is
  given (the server passes the experiment file's folder), else from the working directory.
  The file's folder goes on `sys.path` so its sibling modules and packages import; the file is
  imported as module `coplay_user_<stem>`.
- `package.module:Class`: the class from an importable module (`import_class`, which is also
  what the browser worker calls with the bundle's `games` entry).
- `seeds:FILE.py:Class`, `seeds:module:Class`, `gymnasium:ENV_ID`, `pettingzoo:MODULE`: a game
  written to another contract, wrapped by its adapter in game/adapters/ (see `ADAPTERS`).
- A recording's stored source: `class_from_source(source, spec)` runs the exact text recorded.

Loaded classes are cached, thread-safely: a game imports once per process, however many
matches, participants or replays ask for it. Anything that cannot be loaded raises `LoadError`.
Stdlib only: this module also runs in the browser's Pyodide.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from game.errors import CoplayError

USER_MODULE_PREFIX = "coplay_user_"          # module name of an imported FILE.py
RECORDED_MODULE_PREFIX = "coplay_recorded_"  # module name of a recording's stored source



def _adapter(module: str) -> Callable[[str], type]:
    """The `adapt` of game/adapters/<module>.py, imported on first use (it imports its library lazily)."""
    def adapt(rest: str) -> type:
        adapted: type = importlib.import_module(f"game.adapters.{module}").adapt(rest)
        return adapted
    return adapt


# Adapter specs ("seeds:FILE.py:Class", "gymnasium:ENV_ID", "pettingzoo:MODULE") plug in here:
# the prefix before the first ":" -> a function from the rest of the spec to a class that follows
# the Environment contract. A spec whose prefix is not listed is a plain FILE.py / module spec.
ADAPTERS: dict[str, Callable[[str], type]] = {
    "seeds": _adapter("seeds"),
    "gymnasium": _adapter("gymnasium_env"),
    "pettingzoo": _adapter("pettingzoo_env"),
}

_cache: dict[str, tuple[type, types.ModuleType | None]] = {}   # key -> (class, the FILE.py module it came from)
_lock = threading.RLock()   # reentrant: an adapter may load the spec it wraps



class LoadError(CoplayError):
    """The spec does not name a loadable class; the message says how to fix it."""

    code = "game_not_loadable"


def absolute_spec(spec: str | type, base_dir: str | None = None) -> str:
    """The spec with a relative FILE.py joined to `base_dir`; a class becomes `module:qualname`."""
    if isinstance(spec, type):
        return f"{spec.__module__}:{spec.__qualname__}"
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in ADAPTERS:   # an adapter whose rest is itself a spec (seeds:FILE.py:Class)
        return f"{prefix}:{absolute_spec(rest, base_dir)}" if ":" in rest else spec
    target, _, name = spec.rpartition(":")
    if target.endswith(".py") and base_dir and not os.path.isabs(target):
        target = os.path.join(base_dir, target)
    return f"{target}:{name}"


def load_class(spec: str, base_dir: str | None = None) -> type:
    """The class `spec` names, imported on first use and cached."""
    prefix, sep, rest = spec.partition(":")
    adapter = ADAPTERS.get(prefix) if sep else None
    if adapter is not None:
        rest = absolute_spec(rest, base_dir) if ":" in rest else rest
        return _cached(f"{prefix}:{rest}", lambda: (adapter(rest), None))
    target, sep, class_name = spec.rpartition(":")
    if not sep or not target or not class_name:
        raise LoadError(f"{spec!r} is not of the form FILE.py:Class or package.module:Class")
    if not target.endswith(".py"):
        return _cached(spec, lambda: (import_class(spec), None))
    path = Path(base_dir or "", target).resolve()
    return _cached(f"{path}:{class_name}", lambda: _file_class(path, target, class_name))


def import_class(spec: str) -> type:
    """The class of a `package.module:Class` spec, from an importable module (no file paths)."""
    module_name, sep, class_name = spec.rpartition(":")
    if not sep or not module_name or not class_name or module_name.endswith(".py"):
        raise LoadError(f"{spec!r} is not of the form package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LoadError(f"cannot import module {module_name!r}: {exc}") from exc
    return _class_in(module, class_name, module_name)


def class_from_source(source: str, spec: str) -> type:
    """The class named by `spec`'s `:Class` from a module's source text (a recording's stored source).

    The module is built once per distinct source and is not registered in `sys.modules`."""
    class_name = spec.rpartition(":")[2]
    digest = hashlib.sha256(source.encode()).hexdigest()

    def build() -> tuple[type, None]:
        module = types.ModuleType(f"{RECORDED_MODULE_PREFIX}{digest[:12]}")
        try:
            exec(compile(source, f"<recorded source of {spec}>", "exec"), module.__dict__)
        except Exception as exc:
            raise LoadError(f"the recorded source of {spec} failed: {type(exc).__name__}: {exc}") from exc
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            raise LoadError(f"the recorded source defines no class {class_name!r}")
        return cls, None

    return _cached(f"{RECORDED_MODULE_PREFIX}{digest}:{class_name}", build)


def _cached(key: str, load: Callable[[], tuple[type, types.ModuleType | None]]) -> type:
    with _lock:
        entry = _cache.get(key)
        # A FILE.py game stays cached while its module is the one registered under its name
        # (another file with the same name, or a test, may have replaced or removed it since).
        if entry is None or (entry[1] is not None and sys.modules.get(entry[1].__name__) is not entry[1]):
            entry = _cache[key] = load()
        return entry[0]


def _file_class(path: Path, target: str, class_name: str) -> tuple[type, types.ModuleType]:
    if not path.is_file():
        raise LoadError(f"no such file: {target}")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name = f"{USER_MODULE_PREFIX}{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise LoadError(f"importing {target} failed: {type(exc).__name__}: {exc}") from exc
    return _class_in(module, class_name, target), module


def _class_in(module: types.ModuleType, class_name: str, where: str) -> type:
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise LoadError(f"{where} has no class named {class_name!r}")
    return cls


class GameLoader:
    """Loads the specs of one experiment: relative FILE.py specs from `base_dir`; a class passes through."""

    def __init__(self, base_dir: str | None = None) -> None:
        self.base_dir = base_dir

    def __call__(self, spec: str | type) -> type:
        return spec if isinstance(spec, type) else load_class(spec, self.base_dir)

    def absolute(self, spec: str | type) -> str:
        """The spec as the server sends it in `match_start.game` (see `absolute_spec`)."""
        return absolute_spec(spec, self.base_dir)


def parse_config(text: str | None) -> dict[str, Any] | None:
    """Parse a `--config` JSON object argument."""
    if text is None:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"--config is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise LoadError(f"--config must be a JSON object, got {type(config).__name__}")
    return config
