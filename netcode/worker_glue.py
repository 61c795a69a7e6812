"""The browser worker's Python side: static/worker_core.js calls these functions (JSON in, JSON out).

The worker writes the game bundle (app/pyodide/bundle.py; this module is part of it) into
Pyodide's file system under one root folder, which is on `sys.path`, imports this module
and keeps one PyProxy per function (`FUNCTIONS`). Every function takes and returns `str`
(JSON) or `bool`, so no PyProxy is made per call. Module globals hold the running match
and the STEP / BATCH env: one worker, one match. docs/worker.md is the message protocol.

It runs in CPython too (tests/test_worker_glue.py), where `root` is any folder.
"""
from __future__ import annotations

import functools
import gc
import importlib
import json
import os
import sys
import time
from typing import Any

from game.adapters.onnx_policy import ONNX_PREFIX, WorkerOnnxPlayer, model_input
from game.env import default_action_for
from game.loader import LoadError, load_class
from game.paced_policy import PacedPolicy, local_ai
from game.snapshot import with_snapshots
from netcode.client import MatchClient
from netcode.errors import NetcodeError
from netcode.executor import Executor
from netcode.playground import Playground
from netcode.requests import AdvanceFrame, LoadState, Request, SaveState

FUNCTIONS = ("prepare", "load", "start", "ai_inputs", "tick", "stop", "step", "batch", "evaluate", "terminate", "play")

_root: str | None = None                        # the bundle folder `load` was given
_match: MatchClient | None = None               # the running match
_last: tuple[str, dict[str, Any], int] | None = None   # (game, config, seed) of the last START
_bench: tuple[Any, Executor] | None = None      # the env (and its Executor) STEP and BATCH run against
_play: Playground | None = None                 # `coplay play`'s bench (PLAY)
_ai: dict[str, PacedPolicy] = {}                # the local AI players (an AI seat with runs="browser") and their policies
_models: dict[str, dict[str, Any]] = {}         # the bundle's ONNX models by name: {"observation_keys"}


def _clock() -> float:
    return time.monotonic() * 1000.0


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_jsonable)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):       # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def prepare() -> None:
    """Before another bundle replaces this one: forget the match and every module imported from
    the bundle folder (this one included), so the new files are imported afresh."""
    global _match, _last, _bench, _play, _ai
    _match = _last = _bench = _play = None
    _ai = {}
    if _root is None:
        return
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(_root + os.sep):
            del sys.modules[name]


def load(root: str, paths_json: str, models_json: str = "{}") -> str:
    """The bundle's files are written under `root` (and this module imported from there): put root
    and the bundle's `paths` (relative to it) first on sys.path; answer the Python version.
    `models_json` is the bundle's ONNX models ({name: {"observation_keys"}}; the worker runs them)."""
    global _root, _models
    _models = json.loads(models_json)
    entries = [root]
    for path in json.loads(paths_json):
        entry = os.path.normpath(os.path.join(root, path))
        if entry != root and not entry.startswith(root + os.sep):
            raise ValueError(f"bundle path {path!r} leaves the bundle folder")
        entries.append(entry)
    for entry in reversed(entries):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    _root = root
    importlib.invalidate_caches()
    return _dumps({"python": sys.version.split()[0]})


def start(start_json: str, game_spec: str) -> str:
    """A new match from the match_start payload and the bundle's `module:Class`; replaces any previous one."""
    global _match, _last, _ai
    _match, _ai = None, {}
    payload = json.loads(start_json)
    _match = MatchClient(payload, load_class(game_spec), _clock)
    _ai = local_ai(payload.get("local_ai") or {}, _match.env, _policy_class)
    _match.catch_up({p: default_action_for(_match.env, p) for p in _match.players})   # a seat taken back
    _last = (game_spec, payload.get("config") or {}, payload["seed"])
    return _dumps({"frame": _match.session.current_frame, "players": list(_match.players)})


def ai_inputs() -> str:
    """Before a tick: {player: {"model": name, "data": [float]}} for each local ONNX player that decides on
    the coming frame (game/paced_policy.py), its model's input (shape [1, n]) from that frame's observation.
    The worker runs the models (onnxruntime-web) and passes their outputs to `tick`."""
    match = _match
    if match is None or match.done is not None:
        return "{}"
    observations, frame = match.observations, match.session.current_frame
    inputs = {}
    for player, paced in _ai.items():
        policy = paced.policy.policy
        if isinstance(policy, WorkerOnnxPlayer) and paced.decides(frame):
            inputs[player] = {"model": policy.name, "data": model_input(policy, observations.get(player))}
    return _dumps(inputs)


def tick(actions_json: str, packets_json: str, want_draw: bool, outputs_json: str = "{}") -> str:
    """One frame: feed the relayed packets, tick with the local actions (and the local AI players': those of
    ONNX models from `outputs_json`, {player: [output {"data", "dims", "type"}]}), answer what to post."""
    match = _match
    if match is None:
        raise RuntimeError("no match: START one first")
    for packet in json.loads(packets_json):
        match.receive(packet["from"], packet["data"])
    actions = json.loads(actions_json)
    for player, outputs in json.loads(outputs_json).items():
        policy = _ai[player].policy.policy if player in _ai else None
        if not isinstance(policy, WorkerOnnxPlayer):
            raise ValueError(f"model outputs for {player!r}, which is not a local ONNX player")
        policy.outputs = outputs
    if _ai and match.done is None:
        observations, frame = match.observations, match.session.current_frame
        actions.update({p: policy.act(observations.get(p), frame) for p, policy in _ai.items()})
    match.tick({p: actions[p] if p in actions else default_action_for(match.env, p) for p in match.players})
    out: dict[str, Any] = {"frame": match.session.current_frame, "packets": match.outbox(),
                           "stats": match.stats(), "done": match.done, "skip": match.take_skip_frames()}
    if want_draw:
        out["primitives"] = match.render()
        observations = match.observations
        out["observations"] = {p: observations.get(p) for p in match.players}
    return _dumps(out)


def stop() -> None:
    global _match, _ai
    _match, _ai = None, {}


def _env(env_json: str) -> tuple[Any, Executor]:
    """The STEP / BATCH env: new when the message names a game, else the current one, else
    a fresh copy of the last START's game (its config and seed)."""
    global _bench
    spec = json.loads(env_json) if env_json else {}
    if spec.get("game"):
        game, config, seed = spec["game"], spec.get("config") or {}, spec.get("seed", 0)
    elif _bench is not None:
        return _bench
    elif _last is not None:
        game, config, seed = _last
    else:
        raise RuntimeError("no env for STEP / BATCH: pass game (config, seed) or START a match first")
    _bench = None
    env = load_class(game)(config)
    env.reset(seed)
    _bench = (env, Executor(with_snapshots(env)))
    return _bench


def step(actions_json: str, env_json: str) -> str:
    """One env step outside any session (missing players get their default action)."""
    env, executor = _env(env_json)
    actions = json.loads(actions_json)
    inputs = {p: actions[p] if p in actions else default_action_for(env, p) for p in env.players}
    result = executor.run([AdvanceFrame(executor.frame, inputs, {})])
    last = result.steps[result.frame - 1]
    return _dumps({"frame": result.frame, "terminated": bool(last["terminated"]),
                   "truncated": bool(last["truncated"])})


def _request(item: Any) -> Request:
    op = item.get("op") if isinstance(item, dict) else None
    if op == "save":
        return SaveState(item["frame"], bool(item.get("checksum", False)))
    if op == "load":
        return LoadState(item["frame"])
    if op == "advance":
        return AdvanceFrame(item["frame"], item["inputs"], item.get("status") or {})
    raise NetcodeError("invalid_request", f"not a save/load/advance request: {item!r:.80}")


def batch(requests_json: str, env_json: str) -> str:
    """A netcode.requests list run against the env in one call, as a session's batch is."""
    _, executor = _env(env_json)
    result = executor.run([_request(item) for item in json.loads(requests_json)])
    return _dumps({"checksums": result.checksums, "frame": result.frame})


def evaluate(code: str) -> str:
    """(tests) Run code in a fresh namespace; answer the JSON of its result variable.
    The namespace's `worker` is this module, so tests can look at the match."""
    namespace = {"__name__": "__coplay_eval__", "worker": sys.modules[__name__]}
    exec(compile(code, "<EVAL>", "exec"), namespace)  # noqa: S102 - EVAL runs test code, by design
    return _dumps(namespace.get("result"))


def play(call_json: str) -> str:
    """`coplay play`'s page (static/play.js): one call on the bench of netcode/playground.py.

    {"op": "start", "game": module:Class, "config", "seed", "ai": {player: module:Class}, "record"},
    {"op": "run", "frames", "actions": {player: action}, "draw"} or {"op": "reset", "seed"};
    answers the bench's view, with the recording records queued since the last call."""
    global _play
    call = json.loads(call_json)
    op = call.get("op")
    if op == "start":
        _play = None
        policies = {player: _policy_class(player, spec) for player, spec in (call.get("ai") or {}).items()}
        _play = Playground(load_class(call["game"]), call.get("config"), call.get("seed", 0), policies,
                           bool(call.get("record")))
    elif _play is None:
        raise RuntimeError("no game: send PLAY start first")
    elif op == "run":
        _play.run(call.get("frames", 1), call.get("actions") or {})
    elif op == "reset":
        _play.reset(call.get("seed", 0))
    else:
        raise ValueError(f"unknown PLAY op {op!r:.40}: start, run or reset")
    return _dumps({**_play.view(bool(call.get("draw", True))), "records": _play.take_records()})


def _policy_class(player: str, spec: str) -> Any:
    if spec.startswith(ONNX_PREFIX):   # a model of the bundle, which the worker's JavaScript runs
        if spec not in _models:
            raise LoadError(f"the ONNX policy of {player!r} ({spec}) is not in the game bundle; restart the server")
        return functools.partial(WorkerOnnxPlayer, spec, _models[spec].get("observation_keys"))
    try:
        return load_class(spec)
    except LoadError as error:
        raise LoadError(f"the policy of {player!r} ({spec}) cannot run in the browser: {error}; a policy here may "
                        "import only the standard library, game, netcode and the files beside it") from error


def terminate() -> None:
    global _match, _last, _bench, _play, _ai
    _match = _last = _bench = _play = None
    _ai = {}
    gc.collect()
