"""A generic snapshot fallback for envs without `get_state` / `set_state`.

Rollback netcode saves a snapshot every frame, so an env should implement
`get_state()` (a small JSON-able value) and `set_state(state)` itself. For an env that
does not, `with_snapshots(env)` wraps it in `PickleSnapshots`, whose `get_state()`
pickles the env's attributes (its `__dict__`) into a base64 string and whose
`set_state()` unpickles them back. It works for most plain-Python games, but:

- It is much slower: every snapshot pickles and base64-encodes everything the env
  holds (caches, configs, lookup tables too), where a hand-written `get_state()`
  returns a few numbers; its checksums hash that whole string. Check the timings
  `coplay check-env` prints.
- Its checksums (`state_hash` of the pickled string) are only comparable within one
  Python runtime and version: pickle bytes may differ between CPython and Pyodide and
  between Python versions, and can even differ between two equal objects whose
  internals share objects differently. Do not use them for desync detection between peers; the
  env checker compares observations and rewards instead when it uses this fallback.
- Class attributes and anything the env holds outside its `__dict__` (module globals,
  objects shared with other instances) are not saved. Attributes must be picklable
  (no open files, sockets, generators or lambdas).
- Unpickling runs code: only `set_state` snapshots this process made itself, never
  one received from another peer or the network.
"""
from __future__ import annotations

import base64
import pickle
from typing import Any

PICKLE_PROTOCOL = 4  # fixed, so snapshots do not change when Python's default protocol does


def has_snapshots(env: Any) -> bool:
    """True when the env implements both `get_state()` and `set_state(state)` itself."""
    return callable(getattr(env, "get_state", None)) and callable(getattr(env, "set_state", None))


def with_snapshots(env: Any) -> Any:
    """The env itself when it can snapshot itself, else a `PickleSnapshots` wrapper around it."""
    if has_snapshots(env):
        return env
    return PickleSnapshots(env)


class PickleSnapshots:
    """Wraps an env and adds `get_state` / `set_state` by pickling the env's `__dict__`.

    Every other attribute (players, action_space, reset, step, render, ...) is read from
    the wrapped env, which stays available as `unwrapped`.
    """

    def __init__(self, env: Any) -> None:
        if not hasattr(env, "__dict__"):
            raise TypeError(
                f"{type(env).__name__} has no __dict__ (it uses __slots__), so it cannot be "
                "snapshotted by pickling; implement get_state() and set_state(state) on it."
            )
        self.unwrapped = env

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found on the wrapper itself.
        if name == "unwrapped":  # not set yet (e.g. while unpickling the wrapper)
            raise AttributeError(name)
        return getattr(self.unwrapped, name)

    def get_state(self) -> str:
        """The env's attributes, pickled and base64-encoded (a JSON-able str)."""
        try:
            data = pickle.dumps(self.unwrapped.__dict__, protocol=PICKLE_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"cannot pickle the attributes of {type(self.unwrapped).__name__} for a snapshot "
                f"({type(exc).__name__}: {exc}); keep only picklable values in the env or implement "
                "get_state() and set_state(state) on it."
            ) from exc
        return base64.b64encode(data).decode("ascii")

    def set_state(self, state: str) -> None:
        """Replace the env's attributes by those pickled in `state` (from `get_state()`)."""
        attributes = pickle.loads(base64.b64decode(state))
        self.unwrapped.__dict__.clear()
        self.unwrapped.__dict__.update(attributes)

    def __repr__(self) -> str:
        return f"PickleSnapshots({self.unwrapped!r})"
