"""The ONNX models a game bundle carries (`/bundle.json`'s `onnx.models`), for the headless participant's
local AI players: each checked against its sha256 and loaded with CPython onnxruntime, once, as the browser
worker loads it with onnxruntime-web (netcode/worker_glue.py)."""
from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from game.adapters.onnx_policy import OnnxPolicy, OnnxPolicyError
from game.loader import LoadError


class BundleModels:
    """The bundle's models by name ("onnx:NAME"), and those loaded so far."""

    def __init__(self, models: Any = None) -> None:
        self.models: dict[str, Any] = models if isinstance(models, dict) else {}
        self._loaded: dict[str, OnnxPolicy] = {}

    def policy(self, player: str, spec: str) -> OnnxPolicy:
        """The loaded model `spec` for `player`'s AI. Raises LoadError when the bundle lacks it, OnnxPolicyError
        when it is not base64 or does not match its sha256."""
        loaded = self._loaded.get(spec)
        if loaded is not None:
            return loaded
        entry = self.models.get(spec)
        if not isinstance(entry, dict):
            raise LoadError(f"the ONNX policy of {player!r} ({spec}) is not in the game bundle")
        try:
            model = base64.b64decode(entry["base64"], validate=True)
        except (KeyError, TypeError, binascii.Error) as error:
            raise OnnxPolicyError(f"the game bundle's ONNX model {spec} is not base64: {error}") from None
        if hashlib.sha256(model).hexdigest() != entry.get("sha256"):
            raise OnnxPolicyError(f"the game bundle's ONNX model {spec} does not match its sha256")
        policy = OnnxPolicy(spec, observation_keys=entry.get("observation_keys")).load_model(model, spec)
        self._loaded[spec] = policy
        return policy
