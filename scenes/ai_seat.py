"""AI seat settings: which policy plays a seat, where it runs, its timing, seed and reveal.

    Match("pong", "game.games.pong:Pong", humans=["left"],
          ai={"right": AISeat("game.games.policies:PongTracker", reaction_delay_frames=12, seed=7)})

A plain policy spec ("random", a class, "FILE.py:Class", "onnx:FILE.onnx", an OnnxPolicy) is
the same as `AISeat(spec)` with every setting at its default; `Match(ai=...)`, `fill_policy=` and
`stand_in=` take either.

- `runs`: where the policy runs. "server": a bot in the server process. "browser": a local player of one
  participant's peer, played in their browser worker (the match's first human seat hosts it; zero latency,
  no server cost; its inputs travel in that peer's packets and are logged as the AI seat's); if that
  participant leaves, the server plays it with the same policy. An ONNX policy runs there with onnxruntime-web
  (default pre/post-processing or observation_keys only: the worker cannot call the experiment's functions).
  "remote": an agent process
  (`coplay agent URL --token T --policy FILE.py:Class`, app/agent) holding the token of agent `agent`
  plays the seat; `policy` is then only recorded (default "agent:NAME"). A remote seat with no agent
  connected when its match starts, or whose agent stops answering, is played by `fallback` (a server
  policy), or, with fallback=None, as the scene's on_partner_drop says (a fill_policy bot, or the match
  ends).
- `reaction_delay_frames`, `action_repeat`: human-like timing, applied by `game.paced_policy.PacedPolicy`
  wherever the seat runs (a remote seat's in its agent process, on top of the agent's own latency).
- `seed`: the seed the policy gets; None draws one from the match seed (`game.paced_policy.seat_seed`).
  Either way it is recorded in the seat's info (recording header, store, `seat_changed` events).
- `reveal`: whether participants are told this seat is an AI; None follows the scene's `reveal_ai`.
"""
from __future__ import annotations

import re
from typing import Any

from game.adapters.onnx_policy import OnnxPolicy, as_onnx_policy, worker_model_name
from game.paced_policy import seat_seed

from scenes.base import Resolver
from scenes.policies import policy_spec, resolve_policy, why_not_policy

RUNS = ("server", "browser", "remote")
AGENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_DELAY_FRAMES = 3600
MAX_REPEAT = 3600


class AISeat:
    """The settings of one AI seat (see the module docstring)."""

    def __init__(self, policy: Any = None, *, runs: str = "server", reaction_delay_frames: int = 0,
                 action_repeat: int = 1, seed: int | None = None, reveal: bool | None = None,
                 agent: str | None = None, fallback: Any = None) -> None:
        self.policy = f"agent:{agent}" if policy is None and runs == "remote" else policy
        self.runs = runs
        self.agent = agent
        self.fallback = fallback
        self.reaction_delay_frames = reaction_delay_frames
        self.action_repeat = action_repeat
        self.seed = seed
        self.reveal = reveal
        self.factory: Any = None   # the resolved policy factory (a class or a loaded OnnxPolicy)

    def __repr__(self) -> str:
        return (f"AISeat({self.policy!r}, runs={self.runs!r}, reaction_delay_frames={self.reaction_delay_frames!r}, "
                f"action_repeat={self.action_repeat!r}, seed={self.seed!r}, reveal={self.reveal!r}, "
                f"agent={self.agent!r}, fallback={self.fallback!r})")

    def why_not(self) -> str | None:
        """What is wrong with these settings, or None."""
        if isinstance(self.policy, AISeat):
            return "AISeat(policy=...) takes a policy spec, not another AISeat"
        if self.runs == "remote":
            reason = self._why_not_remote()
        else:
            reason = why_not_policy(self.policy)
            if not reason and (self.agent is not None or self.fallback is not None):
                reason = "agent= and fallback= are settings of remote seats (runs='remote')"
        if reason:
            return reason
        if self.runs not in RUNS:
            return f"runs must be one of {', '.join(map(repr, RUNS))}, got {self.runs!r:.40}"
        onnx = onnx_policy_of(self)
        if self.runs == "browser" and onnx is not None and (onnx.preprocess or onnx.postprocess):
            return ("runs='browser' runs an ONNX model with the default pre- and post-processing or "
                    "observation_keys=[...] (the browser worker cannot call a preprocess/postprocess function "
                    "of the experiment file); drop those functions, or use runs='server'")
        for name, value, low, high in (("reaction_delay_frames", self.reaction_delay_frames, 0, MAX_DELAY_FRAMES),
                                       ("action_repeat", self.action_repeat, 1, MAX_REPEAT)):
            if type(value) is not int or not low <= value <= high:
                return f"{name} must be an int from {low} to {high} (frames), got {value!r:.40}"
        if self.seed is not None and (type(self.seed) is not int or not 0 <= self.seed < 1 << 63):
            return f"seed must be None or an int from 0 to 2**63-1, got {self.seed!r:.40}"
        if self.reveal is not None and type(self.reveal) is not bool:
            return f"reveal must be None (follow the scene's reveal_ai), True or False, got {self.reveal!r:.40}"
        return None

    def _why_not_remote(self) -> str | None:
        if not isinstance(self.agent, str) or not AGENT_NAME.fullmatch(self.agent):
            return (f"a remote seat names its agent: agent= 1 to 32 lower-case letters, digits, _ or - "
                    f"(its token's name), got {self.agent!r:.40}")
        if not isinstance(self.policy, str):
            return f"a remote seat's policy is only recorded: give a spec string or None, got {self.policy!r:.40}"
        if self.fallback is None:
            return None
        fallback = as_ai_seat(self.fallback)
        if fallback.runs != "server":
            return f"fallback runs on the server (the remote agent is gone), got runs={fallback.runs!r}"
        reason = fallback.why_not()
        return f"fallback: {reason}" if reason else None

    def resolve(self, resolve: Resolver | None = None) -> Any:
        """The policy factory (a class, or a loaded OnnxPolicy), resolved once and kept. A remote seat's
        policy runs in its agent: this resolves its fallback and returns None."""
        if self.runs == "remote":
            fallback = self.fallback_seat()
            if fallback is not None:
                fallback.resolve(resolve)
            return None
        if self.factory is None:
            self.factory = resolve_policy(self.policy, resolve)
        return self.factory

    def fallback_seat(self) -> AISeat | None:
        """A remote seat's fallback as an AISeat (None: the scene's on_partner_drop decides)."""
        if self.fallback is None:
            return None
        self.fallback = as_ai_seat(self.fallback)   # one object, so its resolved factory is kept
        return self.fallback

    @property
    def spec(self) -> str:
        """The policy as it is recorded: its spec string."""
        return policy_spec(self.policy)

    def reveals(self, scene_reveal_ai: bool) -> bool:
        return scene_reveal_ai if self.reveal is None else self.reveal

    def seat_seed(self, match_seed: int, seat: str) -> int:
        """The seed of this seat in a match: the given one, or one drawn from the match seed."""
        return seat_seed(match_seed, seat) if self.seed is None else self.seed

    def record(self, match_seed: int, seat: str) -> dict[str, Any]:
        """The seat's AI settings as recordings and the store keep them (JSON-able)."""
        factory = self.factory if self.factory is not None else self.policy
        sha256 = factory.sha256 if isinstance(factory, OnnxPolicy) else None
        return {"policy": self.spec, "runs": self.runs, "seed": self.seat_seed(match_seed, seat),
                "reaction_delay_frames": self.reaction_delay_frames, "action_repeat": self.action_repeat,
                "reveal": self.reveal, "model_sha256": sha256,
                **({"agent": self.agent} if self.runs == "remote" else {})}


BROWSER_BUILTINS = {"random": "game.policies:RandomPolicy", "idle": "game.policies:IdlePolicy"}


def onnx_policy_of(seat: AISeat) -> OnnxPolicy | None:
    """The seat's ONNX policy (loaded once the seat is resolved), or None when its policy is not one."""
    if isinstance(seat.factory, OnnxPolicy):
        return seat.factory
    return as_onnx_policy(seat.policy)


def browser_policy_spec(seat: AISeat) -> str:
    """The `module:Class` of the seat's policy as the game bundle (app/pyodide/bundle.py) names it for the
    worker: a built-in's class, else the resolved class (a FILE.py class names the module it was loaded as);
    an ONNX policy is the name of its model in the bundle's `onnx` (the worker runs it with onnxruntime-web)."""
    onnx = onnx_policy_of(seat)
    if onnx is not None:
        return worker_model_name(onnx)
    if isinstance(seat.policy, str) and seat.policy in BROWSER_BUILTINS:
        return BROWSER_BUILTINS[seat.policy]
    return policy_spec(seat.factory if isinstance(seat.factory, type) else seat.policy)


def as_ai_seat(value: Any) -> AISeat:
    """`value` itself when it is an AISeat, else AISeat(value) (a plain policy spec)."""
    return value if isinstance(value, AISeat) else AISeat(value)
