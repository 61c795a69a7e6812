"""ONNX policies: a trained network played as a coplay policy, with onnxruntime in CPython.

    ai={"right": "onnx:models/pong.onnx"}                     # defaults for pre- and post-processing
    ai={"right": OnnxPolicy("models/pong.onnx", observation_keys=["ball.1", "paddle"])}
    ai={"right": OnnxPolicy("models/pong.onnx", preprocess=to_tensor, postprocess=to_action)}

A relative path is taken from the experiment file's folder. `preprocess(observation)` returns
the model's input: an array-like fed to its first input, or a dict {input name: array-like}.
The default flattens the observation (dicts in key order, nested lists) to a float32 tensor of
shape [1, n]; `observation_keys` (a declared mapping) flattens only those parts, in that order,
each a dotted path into the observation ("ball.1" is observation["ball"][1]). `postprocess(outputs, action_space)` gets the model's outputs (a list of numpy arrays)
and returns an action. The default reads the first output: for a Discrete space, an integer output
holding one value is the action's index (a model ending in ArgMax), otherwise its argmax is; for a
Box, the output reshaped to the space's shape and clipped to its bounds.

An `OnnxPolicy` is a policy factory: `load()` reads and checks the model once (the file's sha256
is what recordings name), and each call makes a fresh player policy (`setup`, `act`). numpy and
onnxruntime are imported only when a model is loaded (`pip install 'coplay[onnx]'`).

In the browser worker (an AI seat with runs="browser") onnxruntime-web runs the model instead: a
`WorkerOnnxPlayer` takes the same input (`model_input`) and the same pure-Python `default_action_of`.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from game.errors import CoplayError
from game.spaces import Box, Discrete

ONNX_PREFIX = "onnx:"
INSTALL_HINT = "install onnxruntime: pip install 'coplay[onnx]'  (or: pip install onnxruntime)"


class OnnxPolicyError(CoplayError, ValueError):
    """An ONNX policy cannot be used: missing model file, not a model, onnxruntime missing."""

    code = "onnx_policy"


def as_onnx_policy(policy: Any) -> OnnxPolicy | None:
    """`policy` as an OnnxPolicy: itself when it is one, a new one for an "onnx:PATH" spec, else None."""
    if isinstance(policy, OnnxPolicy):
        return policy
    if isinstance(policy, str) and policy.startswith(ONNX_PREFIX):
        return OnnxPolicy(policy.removeprefix(ONNX_PREFIX))
    return None


_sessions: dict[tuple[str, str], Any] = {}   # (absolute path, sha256) -> onnxruntime.InferenceSession
_lock = threading.Lock()


class OnnxPolicy:
    """A model file plus optional pre/post-processing functions (see the module docstring)."""

    def __init__(self, path: str, *, preprocess: Callable[[Any], Any] | None = None,
                 postprocess: Callable[[list[Any], Any], Any] | None = None,
                 observation_keys: Sequence[str] | None = None) -> None:
        self.path = path
        self.preprocess = preprocess
        self.observation_keys = None if observation_keys is None else tuple(observation_keys)
        self.postprocess = postprocess
        self.sha256: str | None = None     # of the model file, once loaded
        self.file: str | None = None       # its absolute path, once loaded
        self.session: Any = None

    @property
    def spec(self) -> str:
        return ONNX_PREFIX + str(self.path)

    def __repr__(self) -> str:
        return f"OnnxPolicy({self.path!r})"

    def why_not(self) -> str | None:
        """What is wrong with the settings themselves (None when nothing); `load` checks the file."""
        if not isinstance(self.path, str) or not self.path.endswith(".onnx"):
            return f"an ONNX policy needs a path ending in .onnx, got {self.path!r:.80}"
        for name, function in (("preprocess", self.preprocess), ("postprocess", self.postprocess)):
            if function is not None and not callable(function):
                return f"OnnxPolicy {name} must be a function, got {type(function).__name__}"
        keys = self.observation_keys
        if keys is not None:
            if self.preprocess is not None:
                return "OnnxPolicy takes preprocess= or observation_keys=, not both"
            if not keys or not all(isinstance(k, str) and k for k in keys):
                return f"OnnxPolicy observation_keys must be a non-empty list of dotted paths, got {keys!r:.80}"
        return None

    def load(self, base_dir: str | None = None) -> OnnxPolicy:
        """Read the model (relative paths from `base_dir`), hash it and open an onnxruntime session;
        raises OnnxPolicyError saying what to do when it cannot."""
        reason = self.why_not()
        if reason:
            raise OnnxPolicyError(reason)
        path = os.path.abspath(os.path.join(base_dir or "", self.path))
        try:
            with open(path, "rb") as file:
                model = file.read()
        except OSError as exc:
            raise OnnxPolicyError(f"ONNX model {self.path} cannot be read ({exc.strerror}: {path}); "
                                  f"put the .onnx file there or fix the path") from None
        self.load_model(model, path)
        self.file = path
        return self

    def load_model(self, model: bytes, source: str) -> OnnxPolicy:
        """Open an onnxruntime session on `model`, the bytes of an .onnx file (`load` reads them from the
        file; a headless participant gets them from the game bundle); `source` names where they came from."""
        sha256 = hashlib.sha256(model).hexdigest()
        with _lock:
            session = _sessions.get((source, sha256))
            if session is None:
                session = _sessions[(source, sha256)] = _open_session(model, self.path)
        self.session, self.sha256 = session, sha256
        return self

    def __call__(self) -> OnnxPlayer:
        """A fresh player policy (after `load`)."""
        if self.session is None:
            raise OnnxPolicyError(f"{self!r} was not loaded; call load() first")
        return OnnxPlayer(self)


def _open_session(model: bytes, name: str) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise OnnxPolicyError(f"ONNX policy {name} needs onnxruntime, which is not installed; "
                              f"{INSTALL_HINT}") from None
    options = onnxruntime.SessionOptions()
    # One thread, no spinning: a policy model is small, and the server's event loop must keep its core
    # (onnxruntime's default thread pool spins after every run).
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad models
        raise OnnxPolicyError(f"{name} is not a usable ONNX model ({type(exc).__name__}: "
                              f"{str(exc).strip()[:300]}); export the policy again (e.g. torch.onnx.export) "
                              f"and check it with onnx.checker.check_model") from None
    if not session.get_inputs() or not session.get_outputs():
        raise OnnxPolicyError(f"{name} has no inputs or no outputs; a policy model maps an observation "
                              f"tensor to an action tensor")
    return session


class OnnxPlayer:
    """One player's ONNX policy: observation -> preprocess -> model -> postprocess -> action."""

    def __init__(self, model: OnnxPolicy) -> None:
        self.model = model
        self.session = model.session
        self.input_name = self.session.get_inputs()[0].name
        self.action_space: Any = None

    def setup(self, player: str, action_space: Any, seed: int) -> None:
        self.action_space = action_space

    def act(self, observation: Any) -> Any:
        import numpy as np

        tensor = model_input(self.model, observation)
        if isinstance(tensor, Mapping):
            feeds = {name: np.asarray(value, dtype=np.float32) for name, value in tensor.items()}
        else:
            array = np.asarray(tensor, dtype=np.float32)
            feeds = {self.input_name: array.reshape(1, -1) if self.model.preprocess is None else array}
        outputs = self.session.run(None, feeds)
        post = self.model.postprocess
        return post(outputs, self.action_space) if post is not None else default_action_of(outputs, self.action_space)


def worker_model_name(policy: OnnxPolicy) -> str:
    """The name of `policy`'s model in the game bundle (app/pyodide/bundle.py) and the browser worker:
    "onnx:" and a digest of its path and observation_keys."""
    digest = hashlib.sha256(repr((policy.path, policy.observation_keys)).encode()).hexdigest()
    return ONNX_PREFIX + digest[:16]


class WorkerOnnxPlayer:
    """An ONNX policy's player in the browser worker, where onnxruntime-web (JavaScript, async) runs the
    model: before a tick, netcode/worker_glue.py hands `model_input` to static/worker_core.js, which awaits
    the model and passes its outputs back; `act` then reads them (`outputs`, set just before)."""

    preprocess = None   # a browser-run ONNX seat takes the default preprocess or observation_keys

    def __init__(self, name: str, observation_keys: Sequence[str] | None = None) -> None:
        self.name = name
        self.observation_keys = None if observation_keys is None else tuple(observation_keys)
        self.action_space: Any = None
        self.outputs: list[Any] | None = None

    def setup(self, player: str, action_space: Any, seed: int) -> None:
        self.action_space = action_space

    def act(self, observation: Any) -> Any:
        outputs, self.outputs = self.outputs, None
        if outputs is None:
            raise OnnxPolicyError(f"ONNX model {self.name}: no outputs for this decision (the worker must run "
                                  f"the model on worker_glue.ai_inputs() before the tick)")
        return default_action_of(outputs, self.action_space)


def model_input(model: Any, observation: Any) -> Any:
    """The model's input for `observation`: `model.preprocess(observation)` when it has one, else the
    observation's numbers (those at `model.observation_keys`, or all) as a flat list of floats."""
    pre, keys = getattr(model, "preprocess", None), model.observation_keys
    if pre is not None:
        return pre(observation)
    if keys is not None:
        return [x for key in keys for x in flatten_observation(pick(observation, key), key)]
    return flatten_observation(observation)


def pick(observation: Any, key: str) -> Any:
    """The part of `observation` at a dotted path: "ball.1" is observation["ball"][1]."""
    item = observation
    for part in key.split("."):
        try:
            item = item[int(part)] if isinstance(item, (list, tuple)) else item[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise OnnxPolicyError(f"observation_keys: the observation has nothing at {key!r} (no {part!r} in "
                                  f"{type(item).__name__} {str(item)[:60]})") from None
    return item


def flatten_observation(observation: Any, where: str = "observation") -> list[float]:
    """Every number of an observation in order (dict values in key order, lists in index order);
    bools count as 0/1."""
    flat: list[float] = []

    def walk(item: Any, path: str) -> None:
        if isinstance(item, Mapping):
            for key, value in item.items():
                walk(value, f"{path}.{key}")
        elif isinstance(item, (list, tuple)):
            for index, value in enumerate(item):
                walk(value, f"{path}.{index}")
        elif isinstance(item, (bool, int, float)):
            flat.append(float(item))
        elif hasattr(item, "tolist"):
            walk(item.tolist(), path)
        else:
            raise OnnxPolicyError(f"the default ONNX preprocess takes numbers, lists and dicts, but {path} is a "
                                  f"{type(item).__name__}; pass OnnxPolicy(path, observation_keys=[...]) or "
                                  f"preprocess=...")

    walk(observation, where)
    return flat


def default_action_of(outputs: list[Any], action_space: Any) -> Any:
    """The default postprocess: the action the model's first output names (see the module docstring).
    Pure Python (the browser worker has no numpy): an output is a numpy array, a nested list, or
    {"data": flat list, "dims": shape, "type": onnxruntime-web's element type}."""
    values, integer = _flat(outputs[0])
    if isinstance(action_space, Discrete):
        if len(values) == 1 and integer:
            return int(values[0]) + action_space.start
        if not values:
            raise OnnxPolicyError("the ONNX model's first output is empty; a Discrete action needs scores or an index")
        return max(range(len(values)), key=values.__getitem__) + action_space.start   # the first of equal maxima
    if isinstance(action_space, Box):
        size = 1
        for dim in action_space.shape:
            size *= dim
        if len(values) != size:
            raise OnnxPolicyError(f"the ONNX model's first output has {len(values)} numbers; the Box action space "
                                  f"of shape {tuple(action_space.shape)} needs {size}")
        clipped = [min(max(v, action_space.low), action_space.high) for v in values]
        flat: list[Any] = [int(round(v)) for v in clipped] if action_space.integer else clipped
        return _shaped(flat, tuple(action_space.shape))
    raise OnnxPolicyError(f"the default ONNX postprocess handles Discrete and Box action spaces, not "
                          f"{type(action_space).__name__}: pass OnnxPolicy(path, postprocess=...)")


INTEGER_TYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")


def _flat(value: Any) -> tuple[list[Any], bool]:
    """The numbers of an output (or a space bound) in order, and whether they are integers."""
    if isinstance(value, Mapping):   # onnxruntime-web's tensor, as static/worker_core.js passes it
        return list(value["data"]), value.get("type") in INTEGER_TYPES
    dtype = getattr(value, "dtype", None)
    if dtype is not None:   # numpy
        return value.reshape(-1).tolist(), dtype.kind in "iu"
    if isinstance(value, (list, tuple)):
        flat: list[Any] = []
        for item in value:
            flat.extend(_flat(item)[0])
        return flat, all(isinstance(x, int) and not isinstance(x, bool) for x in flat)
    return [value], isinstance(value, int) and not isinstance(value, bool)


def _shaped(flat: list[Any], shape: tuple[int, ...]) -> Any:
    if len(shape) <= 1:
        return flat if shape else flat[0]
    step = len(flat) // shape[0]
    return [_shaped(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]
