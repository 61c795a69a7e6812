"""Replay-time policy analysis: what a policy chooses on the observations of a recorded match.

    from app.analysis.policy_replay import policy_steps, agreement
    steps = list(policy_steps("data/study/recordings/M.jsonl", "onnx:models/pong.onnx", "right"))
    print(agreement(steps))   # the share of frames where the policy chose what was recorded

The recording is re-simulated from its seed and recorded inputs (so the game evolves exactly
as it did); at each frame the policy sees `player`'s observation and its choice is set beside
the recorded input. `policy` is any policy spec or an `AISeat`: an AISeat's reaction delay and
action repeat are applied as a server bot applies them (game/paced_policy.py). Its seed is the
AISeat's, else the seed the recording names for the AI seat of `player`, else 0; each episode's
policy gets `policy_seed(seed, episode)` as a bot does. So a seat's own settings reproduce that
bot's recorded inputs exactly, and a human's seat can be compared with any policy.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.analysis.replay import episode_lengths, episode_sim, resolve_game
from app.data.recording import Recording, read_recording
from game.env import action_space_for, default_action_for
from game.paced_policy import PacedPolicy, policy_seed
from scenes.ai_seat import as_ai_seat
from scenes.base import Resolver
from scenes.policies import Bot


@dataclass(frozen=True)
class PolicyStep:
    episode: int
    frame: int
    observation: Any
    recorded: Any    # the input the recording holds for the player at this frame
    chosen: Any      # what the policy chose


def policy_steps(recording: str | Recording, policy: Any, player: str, *, resolve: Resolver | None = None,
                 episodes: Sequence[int] | None = None) -> Iterator[PolicyStep]:
    """Every frame of the recorded episodes (all, or `episodes`) with the policy's choice for `player`."""
    if isinstance(recording, str):
        recording = read_recording(recording)
    if player not in recording.players:
        raise ValueError(f"the recording has no player {player!r}; its players are {list(recording.players)}")
    game_class = resolve_game(recording)
    seat = as_ai_seat(policy)
    reason = seat.why_not()
    if reason:
        raise ValueError(f"policy {policy!r}: {reason}")
    factory = seat.resolve(resolve)
    base_seed = seat.seed if seat.seed is not None else _recorded_seed(recording, player)
    env = game_class(recording.header["config"])
    space, default = action_space_for(env, player), default_action_for(env, player)
    column = recording.players.index(player)
    lengths = episode_lengths(recording)
    for episode in sorted(recording.episodes) if episodes is None else episodes:
        bot = Bot(factory, player=player, action_space=space, default_action=default,
                  seed=policy_seed(base_seed, episode))
        paced = PacedPolicy(bot, reaction_delay_frames=seat.reaction_delay_frames, action_repeat=seat.action_repeat,
                            default_action=default)
        sim = episode_sim(recording, game_class, episode, lengths[episode])
        inputs = recording.episodes[episode]["inputs"]
        while not sim.done:
            frame, observation = sim.frame, sim.observations[player]
            yield PolicyStep(episode, frame, observation, inputs[frame][column], paced.act(observation, frame))
            sim.step()


def agreement(steps: Sequence[PolicyStep]) -> float:
    """The share of steps where the policy chose the recorded input (1.0 for none)."""
    return sum(step.recorded == step.chosen for step in steps) / len(steps) if steps else 1.0


def _recorded_seed(recording: Recording, player: str) -> int:
    for info in (recording.header.get("seats") or {}).values():
        ai = info.get("ai")
        if player in info.get("players", ()) and isinstance(ai, dict) and type(ai.get("seed")) is int:
            seed: int = ai["seed"]
            return seed
    return 0
