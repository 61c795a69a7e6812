"""`coplay play`'s bench: one game with every player local, stepped frame by frame.

Human players' actions come from the page's keyboard (one key map per player); the others are
played by policies (`act(observation) -> action` classes, see scenes/policies.py) or get their
default action. The page (static/play.js) drives it through netcode/worker_glue.py's `play`
in the browser worker: `run` some frames, `reset` with a seed, read the `view` (frame,
observations, rewards, done flags, the state checksum, draw primitives).

With `record` on, every frame's inputs and a checksum every CHECK_INTERVAL frames (and at
an episode's end) queue up as recording records (docs/recording.md) that `take_records`
hands to the page, which posts them to the play server for its recording.
Stdlib only: it runs in Pyodide and in CPython (tests).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from game.env import action_space_for, default_action_for
from game.hashing import state_hash
from game.snapshot import with_snapshots
from game.errors import CoplayError

CHECK_INTERVAL = 16   # frames between recorded checksums, as the netcode's default desync interval
MAX_FRAMES_PER_RUN = 64


class PlayError(CoplayError, ValueError):
    """A play request the bench cannot carry out; the message says why."""

    code = "bad_play_request"


class Playground:
    """The env of `game_class(config)`, reset with `seed`, and a policy per AI player.

    `policies` maps AI players to policy classes; a policy is built afresh (and `setup` with
    the episode's seed plus the player's index) at every reset, so a seed replays an episode."""

    def __init__(self, game_class: type, config: Mapping[str, Any] | None, seed: int,
                 policies: Mapping[str, type] | None = None, record: bool = False) -> None:
        self.game_class = game_class
        self.config = dict(config or {})
        self.env = with_snapshots(game_class(dict(self.config)))
        self.players = tuple(self.env.players)
        unknown = sorted(set(policies or {}) - set(self.players))
        if unknown:
            raise PlayError(f"no player {unknown[0]!r} in this game; its players are {', '.join(self.players)}")
        self.policy_classes = dict(policies or {})
        self.record = record
        self.records: list[dict[str, Any]] = []
        self.episode = -1
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Start the next episode with `seed` (the episode before it ends where it is)."""
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise PlayError(f"the seed must be an int in [0, 2**63), got {seed!r:.40}")
        if self.episode >= 0 and not self.done:
            self._checksum_record()
        if self.episode >= 0:   # a fresh env per episode, as matches and replays build them
            self.env = with_snapshots(self.game_class(dict(self.config)))
        self.episode += 1
        self.seed = seed
        self.frame = 0
        self.observations = self.env.reset(seed)
        self.rewards = {p: 0.0 for p in self.players}
        self.returns = {p: 0.0 for p in self.players}
        self.terminated = self.truncated = False
        self.info: Any = {}
        self.policies = {p: self._policy(cls, p, seed + self.players.index(p))
                         for p, cls in self.policy_classes.items()}
        self._queue({"type": "episode", "episode": self.episode, "seed": seed})
        self._checksum_record()

    @property
    def done(self) -> bool:
        return bool(self.terminated or self.truncated)

    def run(self, frames: int, actions: Mapping[str, Any]) -> int:
        """Step up to `frames` frames (fewer when the episode ends) with the human players'
        `actions` ({player: action}; a player left out gets their default); returns the frames run."""
        if not isinstance(frames, int) or not 0 <= frames <= MAX_FRAMES_PER_RUN:
            raise PlayError(f"frames must be an int in [0, {MAX_FRAMES_PER_RUN}], got {frames!r:.40}")
        humans = {}
        for player, action in actions.items():
            if player not in self.players or player in self.policies:
                raise PlayError(f"{player!r} is not a human player of this game")
            reason = action_space_for(self.env, player).why_not(action)
            if reason:
                raise PlayError(f"{action!r:.40} is not an action of {player!r}: {reason}")
            humans[player] = action
        ran = 0
        while ran < frames and not self.done:
            self._step(humans)
            ran += 1
        return ran

    def _step(self, humans: Mapping[str, Any]) -> None:
        inputs = {}
        for player in self.players:
            if player in self.policies:
                inputs[player] = self._act(player)
            else:
                inputs[player] = humans[player] if player in humans else default_action_for(self.env, player)
        result = self.env.step(inputs)
        self._queue({"type": "inputs", "episode": self.episode, "frame": self.frame,
                     "actions": [inputs[p] for p in self.players]})
        self.frame += 1
        self.observations = result.get("observations", {})
        self.rewards = dict(result.get("rewards") or {})
        for player, reward in self.rewards.items():
            self.returns[player] = self.returns.get(player, 0.0) + reward
        self.terminated, self.truncated = bool(result.get("terminated")), bool(result.get("truncated"))
        self.info = result.get("info") or {}
        if self.done:
            self._checksum_record()
            self._queue({"type": "event", "kind": "episode_end", "episode": self.episode, "frame": self.frame,
                         "data": {"terminated": self.terminated, "truncated": self.truncated}})
        elif self.frame % CHECK_INTERVAL == 0:
            self._checksum_record()

    def _policy(self, cls: type, player: str, seed: int) -> Any:
        policy = cls()
        setup = getattr(policy, "setup", None)
        if callable(setup):
            setup(player, action_space_for(self.env, player), seed)
        return policy

    def _act(self, player: str) -> Any:
        """The AI player's action: its policy's, the default for None, refused when outside the space."""
        policy = self.policies[player]
        action = policy.act(self.observations.get(player))
        if action is None:
            return default_action_for(self.env, player)
        reason = action_space_for(self.env, player).why_not(action)
        if reason:
            raise PlayError(f"policy {type(policy).__name__} playing {player!r} chose an invalid action: {reason}")
        return action

    def checksum(self) -> str:
        """The state's canonical hash, as peers report it and `coplay replay` checks it."""
        return state_hash(self.env.get_state())

    def _checksum_record(self) -> None:
        if self.record:
            self._queue({"type": "checksum", "episode": self.episode, "frame": self.frame,
                         "checksum": self.checksum()})

    def _queue(self, record: dict[str, Any]) -> None:
        if self.record:
            self.records.append(record)

    def take_records(self) -> list[dict[str, Any]]:
        """The recording records queued since the last call (always empty without `record`)."""
        records, self.records = self.records, []
        return records

    def view(self, draw: bool = True) -> dict[str, Any]:
        """What the inspector shows; `primitives` (the env's render()) only when `draw`."""
        out: dict[str, Any] = {
            "episode": self.episode, "seed": self.seed, "frame": self.frame, "checksum": self.checksum(),
            "terminated": self.terminated, "truncated": self.truncated, "info": self.info,
            "players": {p: {"observation": self.observations.get(p), "reward": self.rewards.get(p, 0.0),
                            "return": self.returns.get(p, 0.0), "ai": p in self.policies}
                        for p in self.players},
        }
        if draw:
            render = getattr(self.env, "render", None)
            out["primitives"] = render() if callable(render) else []
        return out
