"""The generic snapshot: a plain, JSON-able copy of an object's attributes, and its restore.

Rollback netcode saves a snapshot every frame, so an env should implement `get_state()`
(a small JSON-able value) and `set_state(state)` itself. For an env that does not,
`with_snapshots(env)` wraps it in `DeepSnapshots`, whose `get_state()` is `capture(env)`:
the env's attributes (its `__dict__`), walked deeply and turned into plain JSON-able
values, so the netcode hashes it like any state and its checksums agree between runs
and processes. `set_state(state)` writes them back (`restore`), in place where the
objects already exist (so objects the env shares between attributes stay shared).

What `capture` understands (tagged values are one-key dicts whose key starts with "@"):

- None, bool, int, float, str, lists, dicts with str keys: as they are;
- tuples, sets, dicts with other keys, Enum members;
- objects with a `__dict__` or `__slots__` (their attributes, walked deeply; classes must be
  importable by module and name to be rebuilt on a fresh instance);
- `random.Random` (its `getstate()`), numpy arrays, numpy scalars and numpy
  `Generator`s (their bit generator's state), found by duck typing: numpy is imported
  only when restoring a snapshot that holds numpy values;
- functions, classes and modules are kept by name and never replaced on restore; other
  objects without attributes (numpy dtypes, compiled objects) are treated as constants.

What it refuses (`SnapshotError`, which `coplay check-env` reports up front with the fix):
generators, iterators, files, sockets, threads and locks, whose state cannot be copied.

Limits: it is slower than a hand-written `get_state()` (everything the env holds is
walked every frame: check the timings `coplay check-env` prints); module globals and
class attributes are not saved; a cycle back to an object being captured is kept as is.
"""
from __future__ import annotations

import enum
import importlib
import io
import random
import sys
import threading
import types
from typing import Any

from game.errors import CoplayError

_PLAIN = (type(None), bool, int, float, str)
_REFS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType, type,
         types.BuiltinMethodType)
_REFUSED = (types.GeneratorType, types.CoroutineType, io.IOBase, threading.Thread)
_LOCKS = (type(threading.Lock()), type(threading.RLock()))


class SnapshotError(CoplayError, TypeError):
    """An env holds something the generic snapshot cannot copy; the message says where and what to do."""

    code = "not_snapshottable"


def has_snapshots(env: Any) -> bool:
    """True when the env implements both `get_state()` and `set_state(state)` itself."""
    return callable(getattr(env, "get_state", None)) and callable(getattr(env, "set_state", None))


def with_snapshots(env: Any) -> Any:
    """The env itself when it can snapshot itself, else a `DeepSnapshots` wrapper around it."""
    if has_snapshots(env):
        return env
    return DeepSnapshots(env)


class DeepSnapshots:
    """Wraps an env and adds `get_state` / `set_state` by capturing and restoring its attributes.

    Every other attribute (players, action_space, reset, step, render, ...) is read from
    the wrapped env, which stays available as `unwrapped`.
    """

    def __init__(self, env: Any) -> None:
        if _attributes(env) is None:
            raise SnapshotError(
                f"{type(env).__name__} has no attributes the generic snapshot can copy (no __dict__ or "
                "__slots__); implement get_state() and set_state(state) on it."
            )
        self.unwrapped = env

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found on the wrapper itself.
        if name == "unwrapped":
            raise AttributeError(name)
        return getattr(self.unwrapped, name)

    def get_state(self) -> dict[str, Any]:
        """The env's attributes as plain JSON-able values (see `capture`)."""
        return capture(self.unwrapped)

    def set_state(self, state: dict[str, Any]) -> None:
        """Put the env's attributes back as `get_state()` captured them."""
        restore_attributes(self.unwrapped, state)

    def __repr__(self) -> str:
        return f"DeepSnapshots({self.unwrapped!r})"


def capture(obj: Any) -> dict[str, Any]:
    """The attributes of `obj` (its `__dict__` and `__slots__`) as plain JSON-able values, copied deeply."""
    return _capture_dict(_attributes(obj) or {}, type(obj).__name__, set())


def restore_attributes(obj: Any, state: dict[str, Any]) -> None:
    """Set `obj`'s attributes to those `capture` returned: restored in place, extra ones removed."""
    current = _attributes(obj) or {}
    for name, value in state.items():
        restored = _restore(current.get(name), value)
        if name not in _slots(type(obj)):
            obj.__dict__[name] = restored
        else:
            object.__setattr__(obj, name, restored)
    for name in current:
        if name not in state:
            object.__delattr__(obj, name)


def _slots(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else [n for n in slots if n not in ("__dict__", "__weakref__")]
    return tuple(names)


def _attributes(obj: Any) -> dict[str, Any] | None:
    """The instance attributes of `obj` (None when it has neither `__dict__` nor slots)."""
    slots = _slots(type(obj))
    if not slots and not hasattr(obj, "__dict__"):
        return None
    attributes = {name: getattr(obj, name) for name in slots if hasattr(obj, name)}
    attributes.update(getattr(obj, "__dict__", {}))
    return attributes


def _capture_dict(mapping: dict, path: str, active: set[int]) -> dict[str, Any]:
    return {key: _capture(value, f"{path}.{key}", active) for key, value in mapping.items()}


def _capture(value: Any, path: str, active: set[int]) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if id(value) in active:
        return {"@ref": "cycle"}
    if hasattr(value, "dtype") and hasattr(value, "tolist"):     # numpy array or scalar
        shape = getattr(value, "shape", ())
        if kind.__name__ == "ndarray":
            return {"@ndarray": [value.dtype.str, list(shape), value.tolist()]}
        return {"@npscalar": [value.dtype.str, value.item()]}
    if isinstance(value, random.Random):
        version, internal, gauss = value.getstate()
        return {"@random": [version, list(internal), gauss]}
    if hasattr(value, "bit_generator") and hasattr(value.bit_generator, "state"):   # numpy Generator
        return {"@generator": value.bit_generator.state}
    if isinstance(value, enum.Enum):
        return {"@enum": [_class_name(kind), value.name]}
    if isinstance(value, _REFS):
        return {"@ref": getattr(value, "__qualname__", getattr(value, "__name__", kind.__name__))}
    if isinstance(value, _REFUSED + _LOCKS) or (hasattr(value, "__next__") and hasattr(value, "__iter__")):
        raise SnapshotError(
            f"the env's attribute {path} is a {kind.__name__}, whose state the generic snapshot cannot copy; "
            "keep only data in the env (lists, dicts, numbers, numpy arrays, random generators), or implement "
            "get_state() and set_state(state) on it."
        )
    active.add(id(value))
    try:
        if kind is list:
            return [_capture(item, f"{path}[{i}]", active) for i, item in enumerate(value)]
        if kind is tuple:
            return {"@tuple": [_capture(item, f"{path}[{i}]", active) for i, item in enumerate(value)]}
        if isinstance(value, (set, frozenset)):
            items = [_capture(item, f"{path}{{}}", active) for item in value]
            return {"@set": [kind is frozenset, sorted(items, key=repr)]}
        if isinstance(value, dict):
            if all(type(key) is str and not key.startswith("@") for key in value):
                return _capture_dict(value, path, active)
            return {"@items": [[_capture(k, f"{path} key", active), _capture(v, f"{path}[{k!r}]", active)]
                               for k, v in value.items()]}
        attributes = _attributes(value)
        if attributes is not None:
            return {"@object": [_class_name(kind), _capture_dict(attributes, path, active)]}
        return {"@const": kind.__name__}
    finally:
        active.discard(id(value))


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(name: str) -> Any:
    module_name, _, qualname = name.partition(":")
    found: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _numpy() -> Any:
    return importlib.import_module("numpy")


def _restore(current: Any, value: Any) -> Any:
    """`value` (from `_capture`) as a live object, reusing `current` where it is of the same kind."""
    if type(value) in _PLAIN:
        return value
    if type(value) is list:
        items = [_restore(current[i] if type(current) is list and i < len(current) else None, item)
                 for i, item in enumerate(value)]
        if type(current) is list:
            current[:] = items
            return current
        return items
    tag = next(iter(value), "") if len(value) == 1 else ""
    if not tag.startswith("@"):
        contents = {key: _restore(current.get(key) if isinstance(current, dict) else None, item)
                    for key, item in value.items()}
        if isinstance(current, dict):
            current.clear()
            current.update(contents)
            return current
        return contents
    data = value[tag]
    if tag in ("@ref", "@const"):
        return current
    if tag == "@tuple":
        return tuple(_restore(None, item) for item in data)
    if tag == "@set":
        frozen, items = data
        return (frozenset if frozen else set)(_restore(None, item) for item in items)
    if tag == "@items":
        return {_restore(None, k): _restore(None, v) for k, v in data}
    if tag == "@enum":
        return _class(data[0])[data[1]]
    if tag == "@random":
        version, internal, gauss = data
        rng = current if isinstance(current, random.Random) else random.Random()
        rng.setstate((version, tuple(internal), gauss))
        return rng
    if tag == "@ndarray":
        dtype, shape, items = data
        array = _numpy().array(items, dtype=dtype).reshape(shape)
        if type(current) is type(array) and current.shape == array.shape and current.dtype == array.dtype \
                and current.flags.writeable:
            current[...] = array
            return current
        return array
    if tag == "@npscalar":
        return _numpy().dtype(data[0]).type(data[1])
    if tag == "@generator":
        if hasattr(current, "bit_generator") and current.bit_generator.state["bit_generator"] == data["bit_generator"]:
            current.bit_generator.state = data
            return current
        random_module = _numpy().random
        generator = random_module.Generator(getattr(random_module, data["bit_generator"])())
        generator.bit_generator.state = data
        return generator
    if tag == "@object":
        name, attributes = data
        cls = _class(name)
        target = current if type(current) is cls else cls.__new__(cls)
        restore_attributes(target, attributes)
        return target
    raise SnapshotError(f"unknown snapshot tag {tag!r}")
