"""The env checker: does a game class follow the Environment contract (game/env.py)?

    report = check_env(MyGame, config=None, frames=300, seed=0)

runs the game through `frames` frames of inputs sampled from its action spaces and
raises `EnvCheckError` (with a stable `code` and a `message` saying what is wrong and
how to fix it) at the first problem. In order, it checks:

1. members: reset/step, players, action_space, default_action, observation_space
   (optional), get_state/set_state (both or neither);  codes `missing_member`,
   `bad_constructor`, `bad_players`, `bad_action_space`, `bad_default_action`,
   `bad_observation_space`
2. results: reset/step return the contract's shapes, JSON-able values, observations
   inside observation_space, valid render() primitives;  `bad_reset_result`,
   `bad_step_result`, `not_jsonable`, `bad_observation`, `bad_render`,
   `render_changes_state`
3. determinism: two instances, same seed and inputs, compared every frame;  `nondeterministic`
4. snapshots are not changed by later steps;  `snapshot_aliasing`
5. set_state(get_state()) on a fresh instance continues identically;  `set_state_diverges`
6. SyncTest-style rollbacks reproduce the same frames;  `rollback_mismatch`

Every call into the game also checks that it leaves the global `random` module alone
(`global_random`); an exception raised by the game becomes `env_raised`, with the
original exception as `__cause__`. Episodes that end early restart with seed + episode.

Games without get_state/set_state are checked through the generic snapshot
(game/snapshot.py); the report says so, and a game even that cannot copy fails at once
with `not_snapshottable`. States are compared with `state_hash`, and the observations,
rewards and end flags of every frame are compared too, as is the full state at the last
frame of every episode (before the reset that starts the next one).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable

from game.check_run import Run, call, compare, construct, first_difference, timed_call
from game.checks import (
    EnvCheckError,
    check_action_space,
    check_default_action,
    check_jsonable,
    check_methods,
    check_observation_space,
    check_players,
)
from game.env import action_space_for, default_action_for
from game.hashing import state_hash
from game.render import why_not_primitives
from game.rng import Rng
from game.snapshot import DeepSnapshots, SnapshotError, with_snapshots

__all__ = ["CheckReport", "EnvCheckError", "check_env", "sample_inputs", "trajectory_checksums"]

ROLLBACK_WINDOW = 8  # frames re-simulated per rollback, the netcode's default prediction window


@dataclass(frozen=True)
class CheckReport:
    """What `check_env` checked, and how long the game's calls took (mean µs per call)."""

    env_name: str
    players: tuple[str, ...]
    frames: int
    seed: int
    episodes: int
    generic_snapshot: bool
    step_us: float
    get_state_us: float
    state_hash_us: float


def check_env(env_class: type, config: dict | None = None, frames: int = 300, seed: int = 0) -> CheckReport:
    """Check `env_class` against the Environment contract; raise `EnvCheckError` at the first problem."""
    if not isinstance(env_class, type):
        raise TypeError(f"check_env needs the env class, not {type(env_class).__name__}; pass MyGame, not MyGame()")
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    if type(frames) is not int or frames < 1:
        raise ValueError(f"frames must be an int >= 1, got {frames!r}")
    check_methods(env_class)
    probe = construct(env_class, config)
    players = check_players(probe)
    check_action_space(probe, players)
    check_default_action(probe, players)
    check_observation_space(probe, players)

    def make() -> Any:
        return with_snapshots(construct(env_class, config))

    _check_snapshottable(make(), seed)

    inputs = sample_inputs(probe, frames, seed)
    report = _check_results(make(), inputs, seed)
    _check_determinism(make, inputs, seed)
    _check_snapshot_aliasing(make(), inputs, seed)
    _check_set_state(make, inputs, seed)
    _check_rollback(make(), inputs, seed)
    return report


def sample_inputs(env: Any, frames: int, seed: int) -> list[dict[str, Any]]:
    """Inputs {player: action} for each frame: sampled from the action spaces, a quarter of them default_action."""
    rng = Rng(seed ^ 0xC0FFEE)  # a different stream from a game that seeds Rng(seed)
    inputs = []
    for _ in range(frames):
        actions = {}
        for player in env.players:
            if rng.randbelow(4) == 0:
                actions[player] = default_action_for(env, player)
            else:
                actions[player] = action_space_for(env, player).sample(rng)
        inputs.append(actions)
    return inputs


def trajectory_checksums(env_class: type, config: dict | None = None, frames: int = 300, seed: int = 0) -> list[str]:
    """One checksum per frame (0 = after reset) of the checker's trajectory, without the checks.

    Comparing these between processes catches what one process cannot see (e.g. string hashing).
    """
    env = with_snapshots(construct(env_class, config))
    run = Run(env, sample_inputs(env, frames, seed), seed)
    run.reset()
    checksums = [run.record().digest]
    while not run.done:
        run.step()
        checksums.append(run.record().digest)
    return checksums


# ---------------------------------------------------------------- the checks


def _check_snapshottable(env: Any, seed: int) -> None:
    """A game without get_state/set_state must be one the generic snapshot can copy."""
    if not isinstance(env, DeepSnapshots):
        return
    call(f"reset({seed})", env.reset, seed)
    try:
        env.get_state()
    except SnapshotError as exc:
        raise EnvCheckError(
            "not_snapshottable",
            f"{_name(env)} has no get_state/set_state, and the generic snapshot cannot copy it: {exc}",
        ) from None


def _check_results(env: Any, inputs: list[dict[str, Any]], seed: int) -> CheckReport:
    """Play the inputs once, validating every result and render(), and time the snapshot calls."""
    run = Run(env, inputs, seed)
    run.reset()
    _check_render(run)
    get_state_seconds = hash_seconds = 0.0
    while not run.done:
        run.step()
        state, seconds = timed_call(f"get_state() at frame {run.frame}", env.get_state)
        get_state_seconds += seconds
        check_jsonable(state, "get_state()", f" at frame {run.frame}")
        start = time.perf_counter()
        state_hash(state)
        hash_seconds += time.perf_counter() - start
        _check_render(run)
    frames = len(inputs)
    return CheckReport(
        env_name=_name(env),
        players=tuple(env.players),
        frames=frames,
        seed=seed,
        episodes=run.episodes,
        generic_snapshot=run.generic,
        step_us=run.step_seconds / frames * 1e6,
        get_state_us=get_state_seconds / frames * 1e6,
        state_hash_us=hash_seconds / frames * 1e6,
    )


def _check_render(run: Run) -> None:
    """render() is optional; when present it returns valid primitives and leaves the state alone."""
    render = getattr(run.env, "render", None)
    if render is None:
        return
    before = run.record()
    primitives = call(f"render() at frame {run.frame}", render)
    reason = why_not_primitives(primitives)
    if reason:
        raise EnvCheckError(
            "bad_render", f"{reason} (at frame {run.frame}). See game/render.py for the primitives and their fields."
        )
    if compare(before, run.record()):
        raise EnvCheckError(
            "render_changes_state",
            f"render() at frame {run.frame} changed get_state(). render() must only read the game: "
            f"the browser may call it any number of times, or never.",
        )


def _check_determinism(make: Callable[[], Any], inputs: list[dict[str, Any]], seed: int) -> None:
    """Two instances with the same seed and inputs agree at every frame."""
    first, second = Run(make(), inputs, seed), Run(make(), inputs, seed)
    first.reset()
    second.reset()
    while True:
        found = compare(first.record(), second.record())
        if found:
            path, a, b = found
            raise EnvCheckError(
                "nondeterministic",
                f"Two instances with the same seed ({seed}) and the same inputs diverged at frame "
                f"{first.frame}: {path} is {a} in the first and {b} in the second. A game must depend "
                f"only on its seed and inputs: keep randomness in a seeded generator saved in "
                f"get_state() (e.g. game.rng.Rng), and don't use the wall clock, os.urandom, id() "
                f"or state shared between instances (class attributes, module globals).",
            )
        if first.done:
            return
        first.step()
        second.step()


def _check_snapshot_aliasing(env: Any, inputs: list[dict[str, Any]], seed: int) -> None:
    """A snapshot from get_state() does not change when the game steps on."""
    run = Run(env, inputs, seed)
    run.reset()
    while not run.done:
        state = run.get_state()
        kept = copy.deepcopy(state)
        frame = run.frame
        run.step()
        found = first_difference(kept, state, "get_state()")
        if found:
            path, a, b = found
            raise EnvCheckError(
                "snapshot_aliasing",
                f"The snapshot taken by get_state() at frame {frame} changed when step() ran "
                f"({path} went from {a} to {b}): get_state() returns the game's own lists or dicts, "
                f"so the snapshots the netcode keeps get corrupted. Return copies, e.g. list(self.pos), "
                f"dict(self.scores) or copy.deepcopy(...).",
            )


def _check_set_state(make: Callable[[], Any], inputs: list[dict[str, Any]], seed: int) -> None:
    """A fresh instance given set_state(get_state()) mid-run continues exactly like the original."""
    original = Run(make(), inputs, seed)
    original.reset()
    while original.frame < len(inputs) // 2:
        original.step()
    snapshot = original.save()
    restored = Run(make(), inputs, seed)
    restored.load(snapshot)
    while not original.done:
        original.step()
        restored.step()
        found = compare(original.record(), restored.record())
        if found:
            path, a, b = found
            raise EnvCheckError(
                "set_state_diverges",
                f"A fresh instance given set_state() of the frame-{snapshot[1]} snapshot diverged from the "
                f"original at frame {original.frame}: {path} is {a} in the original and {b} in the "
                f"restored copy. get_state() must capture everything step() depends on (positions, "
                f"counters, RNG state, per-episode settings) and set_state() must restore all of it, "
                f"also on an instance whose reset() was never called.",
            )


def _check_rollback(env: Any, inputs: list[dict[str, Any]], seed: int) -> None:
    """SyncTest: save, step a window, load, step the same inputs again; every frame must repeat."""
    run = Run(env, inputs, seed)
    run.reset()
    while not run.done:
        snapshot = run.save()
        kept = copy.deepcopy(snapshot)
        first_time = []
        for _ in range(min(ROLLBACK_WINDOW, len(inputs) - run.frame)):
            run.step()
            first_time.append(run.record())
        run.load(snapshot)
        for expected in first_time:
            run.step()
            found = compare(expected, run.record())
            if found:
                path, a, b = found
                raise EnvCheckError(
                    "rollback_mismatch",
                    f"After a rollback to frame {snapshot[1]} (set_state() on the same instance, then the "
                    f"same inputs again), frame {run.frame} differs: {path} is {a} the first time and {b} "
                    f"after the rollback. set_state() must reset everything step() reads, including "
                    f"caches and counters kept outside get_state(); the netcode rolls back like this "
                    f"whenever a prediction was wrong.",
                )
        found = first_difference(kept[0], snapshot[0], "get_state()")
        if found:
            path, a, b = found
            raise EnvCheckError(
                "snapshot_aliasing",
                f"set_state() keeps using the snapshot it was given: after restoring the frame-{snapshot[1]} "
                f"snapshot and stepping, the snapshot itself changed ({path} went from {a} to {b}). The "
                f"netcode may restore one snapshot several times, so set_state() must copy what it keeps, "
                f"e.g. self.pos = list(state['pos']).",
            )


def _name(env: Any) -> str:
    return type(env.unwrapped if isinstance(env, DeepSnapshots) else env).__name__
