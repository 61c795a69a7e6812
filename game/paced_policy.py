"""Human-like timing for an AI player, and the seeds its policy gets.

`PacedPolicy` wraps a policy (anything with `act(observation)`) and applies an AI seat's
`reaction_delay_frames` (d) and `action_repeat` (k), keyed by frame number so the result
depends only on the episode's observations, however often a stalled loop asks for the
same frame:

- The policy decides on frames 0, k, 2k, ... (decision frames), seeing that frame's observation.
- The decision taken on frame f is played on frames f+d ... f+d+k-1.
- Frames before d play the default action.

So with d = 0 and k = 1 the wrapper changes nothing. `policy_seed` derives the seed a policy
gets in each episode from its seat's recorded seed. Stdlib only: the browser worker runs this too.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping

from game.env import action_space_for, default_action_for
from game.policies import Bot


def policy_seed(seat_seed: int, episode: int, index: int = 0) -> int:
    """The seed of the `index`-th player's policy of a seat in `episode`: the seat's seed itself in
    episode 0 for the first player; otherwise a 31-bit value derived from all three (sha256)."""
    if episode == 0 and index == 0:
        return seat_seed
    digest = hashlib.sha256(f"coplay-policy:{seat_seed}:{episode}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def seat_seed(match_seed: int, seat: str) -> int:
    """The seed an AI seat gets when its settings name none: drawn from the match seed (sha256)."""
    digest = hashlib.sha256(f"coplay-seat:{match_seed}:{seat}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


class PacedPolicy:
    """`policy` played with a reaction delay and an action repeat (see the module docstring)."""

    def __init__(self, policy: Any, *, reaction_delay_frames: int = 0, action_repeat: int = 1,
                 default_action: Any = None) -> None:
        if type(reaction_delay_frames) is not int or reaction_delay_frames < 0:
            raise ValueError(f"reaction_delay_frames must be an int >= 0, got {reaction_delay_frames!r}")
        if type(action_repeat) is not int or action_repeat < 1:
            raise ValueError(f"action_repeat must be an int >= 1, got {action_repeat!r}")
        self.policy = policy
        self.delay = reaction_delay_frames
        self.repeat = action_repeat
        self.default_action = default_action
        self.decisions: dict[int, Any] = {}   # decision frame -> the action the policy chose there

    def decides(self, frame: int) -> bool:
        """Whether `act(observation, frame)` asks the policy (a decision frame not decided yet)."""
        return frame % self.repeat == 0 and frame not in self.decisions

    def act(self, observation: Any, frame: int) -> Any:
        """The action for `frame`, whose observation is `observation`."""
        if self.decides(frame):
            self.decisions[frame] = self.policy.act(observation)
        played = frame - self.delay
        if played < 0:
            return self.default_action
        decided = played - played % self.repeat
        decisions = self.decisions
        while decisions:   # decisions are kept in frame order: drop those no frame plays any more
            oldest = next(iter(decisions))
            if oldest >= decided:
                break
            del decisions[oldest]
        return decisions.get(decided, self.default_action)


def local_ai(settings: Mapping[str, Mapping[str, Any]], env: Any, load: Callable[[str, str], Any]) -> dict[str, PacedPolicy]:
    """The policies of the AI players a participant's peer plays for an AI seat with runs="browser":
    `settings` is match_start's `local_ai` ({player: {policy, seed, reaction_delay_frames, action_repeat}});
    `load(player, spec)` gives a policy class. Each plays as a server bot plays that seat (app/live/bots.py)."""
    policies = {}
    for player, ai in settings.items():
        default = default_action_for(env, player)
        bot = Bot(load(player, ai["policy"]), player=player, action_space=action_space_for(env, player),
                  default_action=default, seed=ai["seed"])
        policies[player] = PacedPolicy(bot, reaction_delay_frames=ai["reaction_delay_frames"],
                                       action_repeat=ai["action_repeat"], default_action=default)
    return policies
