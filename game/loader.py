"""Load a game class from a `FILE.py:Class` or `package.module:Class` spec."""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from game.errors import CoplayError


class LoadError(CoplayError):
    """The spec does not name a loadable class; the message says how to fix it."""

    code = "game_not_loadable"


def load_class(spec: str) -> type:
    """Import the class named by `spec`. A file's folder goes on sys.path so sibling modules import."""
    target, sep, class_name = spec.rpartition(":")
    if not sep or not target or not class_name:
        raise LoadError(f"{spec!r} is not of the form FILE.py:Class or package.module:Class")
    if target.endswith(".py"):
        path = Path(target).resolve()
        if not path.is_file():
            raise LoadError(f"no such file: {target}")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        module_name = f"coplay_user_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise LoadError(f"importing {target} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise LoadError(f"cannot import module {target!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise LoadError(f"{target} has no class named {class_name!r}")
    return cls


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
