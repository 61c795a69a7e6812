"""A validating session configuration with defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from game.env import action_space_for, default_action_for
from game.spaces import Space
from netcode.errors import NetcodeError

# predictor(player, last_confirmed_action, frame) -> predicted action
Predictor = Callable[[str, Any, int], Any]


def repeat_last(player: str, last_action: Any, frame: int) -> Any:
    """The default prediction: a player keeps doing what they last did."""
    return last_action


@dataclass(frozen=True)
class SessionConfig:
    """Everything a session needs to know about the match; build it with `for_env`.

    players          every player id, in the env's order
    action_spaces    {player: Space}, used to validate local and remote inputs
    default_actions  {player: action} for absent/disconnected players and pre-delay frames
    input_delay      frames between pressing and applying a local input (int, or {player: int})
    max_prediction   frames a session may run past the last confirmed frame; 0 is lockstep
    desync_interval  every n-th confirmed frame is checksummed and compared (0: never)
    disconnect_notify_ms / disconnect_timeout_ms  silence before NetworkInterrupted / Disconnected
    keepalive_ms     a packet is sent at least this often, even while idle
    fps              frames per second, for time-sync arithmetic
    predictor        how remote inputs are guessed (repeat_last by default)
    """

    players: tuple[str, ...]
    action_spaces: Mapping[str, Space]
    default_actions: Mapping[str, Any]
    input_delay: int | Mapping[str, int] = 0
    max_prediction: int = 8
    desync_interval: int = 10
    disconnect_notify_ms: float = 500.0
    disconnect_timeout_ms: float = 3000.0
    keepalive_ms: float = 100.0
    fps: int = 60
    predictor: Predictor = field(default=repeat_last)

    def __post_init__(self) -> None:
        def bad(message: str) -> NetcodeError:
            return NetcodeError("invalid_config", message)

        if len(self.players) < 1 or len(set(self.players)) != len(self.players):
            raise bad(f"players must be a non-empty sequence of unique ids, got {self.players!r}")
        for player in self.players:
            if not isinstance(self.action_spaces.get(player), Space):
                raise bad(f"action_spaces has no Space for player {player!r}")
            if not self.action_spaces[player].contains(self.default_actions.get(player)):
                raise bad(f"default action {self.default_actions.get(player)!r} of {player!r} is not in its action space")
        delays = self.input_delay.values() if isinstance(self.input_delay, Mapping) else [self.input_delay]
        if not all(type(d) is int and 0 <= d <= 30 for d in delays):
            raise bad(f"input_delay must be an int in [0, 30] (or a dict of them), got {self.input_delay!r}")
        if type(self.max_prediction) is not int or not 0 <= self.max_prediction <= 64:
            raise bad(f"max_prediction must be an int in [0, 64], got {self.max_prediction!r}")
        if type(self.desync_interval) is not int or self.desync_interval < 0:
            raise bad(f"desync_interval must be an int >= 0 (0 disables checks), got {self.desync_interval!r}")
        if type(self.fps) is not int or not 1 <= self.fps <= 240:
            raise bad(f"fps must be an int in [1, 240], got {self.fps!r}")
        if not 0 < self.disconnect_notify_ms <= self.disconnect_timeout_ms:
            raise bad("need 0 < disconnect_notify_ms <= disconnect_timeout_ms")
        if not self.keepalive_ms > 0:
            raise bad(f"keepalive_ms must be > 0, got {self.keepalive_ms!r}")

    @classmethod
    def for_env(cls, env: Any, **settings: Any) -> SessionConfig:
        """A config for `env`'s players, action spaces and default actions."""
        players = tuple(env.players)
        return cls(
            players=players,
            action_spaces={p: action_space_for(env, p) for p in players},
            default_actions={p: default_action_for(env, p) for p in players},
            **settings,
        )

    def check_action(self, player: str, action: Any, players: Sequence[str]) -> None:
        """Raise NetcodeError("invalid_input") unless `player` is in `players` and `action` in its space."""
        if player not in players:
            raise NetcodeError("invalid_input", f"{player!r} is not a local player of this session", player=player)
        reason = self.action_spaces[player].why_not(action)
        if reason:
            raise NetcodeError("invalid_input", f"action for {player!r} rejected: {reason}", player=player)

    def delay_of(self, player: str) -> int:
        if isinstance(self.input_delay, Mapping):
            return int(self.input_delay.get(player, 0))
        return self.input_delay

    @property
    def frame_ms(self) -> float:
        return 1000.0 / self.fps

    def is_check_frame(self, frame: int) -> bool:
        return self.desync_interval > 0 and frame % self.desync_interval == 0
