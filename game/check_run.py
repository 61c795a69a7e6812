"""How the env checker drives a game: calls guarded against exceptions and the global
`random`, a `Run` that plays one instance through the checker's inputs (validating every
result, resetting when an episode ends), and the comparison of two runs frame by frame.
"""
from __future__ import annotations

import copy
import inspect
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from game.checks import EnvCheckError, check_jsonable, check_reset_result, check_step_result
from game.hashing import state_hash
from game.snapshot import DeepSnapshots

_RANDOM_HINT = (
    "Games must not call random.random(), random.randint(), random.seed() and the like; "
    "keep a seeded generator in the game (e.g. self.rng = game.rng.Rng(seed)) and save "
    "its state in get_state()."
)


def timed_call(what: str, function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Call into the game: returns (result, seconds). Catches exceptions and use of the global `random`."""
    before = random.getstate()
    start = time.perf_counter()
    try:
        result = function(*args)
    except Exception as exc:
        random.setstate(before)
        raise EnvCheckError("env_raised", f"{what} raised {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - start
    if random.getstate() != before:
        random.setstate(before)
        raise EnvCheckError(
            "global_random", f"{what} used the global `random` module (its state changed). {_RANDOM_HINT}"
        )
    return result, seconds


def call(what: str, function: Callable[..., Any], *args: Any) -> Any:
    """`timed_call` without the timing."""
    return timed_call(what, function, *args)[0]


def construct(env_class: type, config: dict | None) -> Any:
    """`env_class(config)`, after checking the constructor accepts the config."""
    name = env_class.__name__
    try:
        inspect.signature(env_class).bind(config)
    except TypeError:
        raise EnvCheckError(
            "bad_constructor",
            f"{name}(config) cannot be called with one argument; the constructor must accept the "
            f"match config: def __init__(self, config: dict | None = None).",
        ) from None
    except ValueError:  # no signature available (e.g. a C extension class): just try it
        pass
    return call(f"{name}({config!r:.80})", env_class, config)


@dataclass
class Record:
    """What the checker compares between two runs at one frame."""

    state: Any  # get_state()
    outcome: dict  # observations, rewards, terminated, truncated (and reset_observations, last_frame_state)
    digest: str


class Run:
    """Plays one env instance through the checker's inputs, validating every result.

    `frame` counts the steps taken; when an episode ends the env is reset at once with
    seed + episode, so a snapshot is (state, frame, episode). The state at an episode's last
    frame (before that reset) goes into the outcome, so the checks compare it too.
    """

    def __init__(self, env: Any, inputs: list[dict[str, Any]], seed: int) -> None:
        self.env = env
        self.inputs = inputs
        self.seed = seed
        self.generic = isinstance(env, DeepSnapshots)
        self.frame = 0
        self.episode = 0
        self.episodes = 0
        self.outcome: dict[str, Any] = {}
        self.step_seconds = 0.0

    @property
    def done(self) -> bool:
        return self.frame >= len(self.inputs)

    def reset(self) -> None:
        seed = self.seed + self.episode
        observations = call(f"reset({seed})", self.env.reset, seed)
        check_reset_result(self.env, observations, f"reset({seed})")
        self.outcome["reset_observations"] = observations
        self.episodes += 1

    def step(self) -> None:
        actions = copy.deepcopy(self.inputs[self.frame])
        self.frame += 1
        where = f"step() at frame {self.frame}"
        result, seconds = timed_call(f"{where} (actions {actions!r:.200})", self.env.step, actions)
        self.step_seconds += seconds
        check_step_result(self.env, result, self.frame)
        self.outcome = {key: result[key] for key in ("observations", "rewards", "terminated", "truncated")}
        if result["terminated"] or result["truncated"]:
            self.outcome["last_frame_state"] = self.get_state()
            self.episode += 1
            self.reset()

    def get_state(self) -> Any:
        state = call(f"get_state() at frame {self.frame}", self.env.get_state)
        check_jsonable(state, "get_state()", f" at frame {self.frame}")
        return state

    def record(self) -> Record:
        state = self.get_state()
        outcome = copy.deepcopy(self.outcome)  # the game may reuse the objects it returned
        return Record(state, outcome, state_hash([state, outcome]))

    def save(self) -> tuple[Any, int, int]:
        return (self.get_state(), self.frame, self.episode)

    def load(self, snapshot: tuple[Any, int, int]) -> None:
        state, self.frame, self.episode = snapshot
        call(f"set_state() of the frame-{self.frame} snapshot", self.env.set_state, state)


# ---------------------------------------------------------------- comparing runs


def first_difference(a: Any, b: Any, path: str = "") -> tuple[str, str, str] | None:
    """Where two JSON-able values first differ: (path, repr in a, repr in b), or None if equal.

    Floats are compared by repr, like the checksum, so 0.0 and -0.0 differ.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return (f"{path or 'the value'} keys", repr(sorted(a, key=repr)), repr(sorted(b, key=repr)))
        for key in sorted(a, key=repr):
            found = first_difference(a[key], b[key], f"{path}[{key!r}]" if path else str(key))
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return (f"len({path or 'the value'})", str(len(a)), str(len(b)))
        for index, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{index}]")
            if found:
                return found
        return None
    if type(a) is type(b) and repr(a) == repr(b):
        return None
    return (path or "the value", f"{a!r:.60}", f"{b!r:.60}")


def compare(a: Record, b: Record) -> tuple[str, str, str] | None:
    """None when two frames match, else where they differ (the state first, then the outcome)."""
    if a.digest == b.digest:
        return None
    return (
        first_difference(a.state, b.state, "get_state()")
        or first_difference(a.outcome, b.outcome)
        or ("the checksum", a.digest, b.digest)
    )
