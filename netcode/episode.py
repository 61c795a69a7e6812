"""Plays one episode of a match on a P2P session, and knows when it is really over.

The game says it ended (terminated or truncated) at some frame; with predicted inputs
that may still change. `EpisodeRunner` holds the session at the end frame
(`session.end_frame`), lifts the hold if a rollback shows the game did not end there
after all, and reports `done` once every input up to the end is confirmed. Browser
workers, server bots and headless participants all play episodes this way.
"""
from __future__ import annotations

from typing import Any, Mapping

from game.hashing import state_hash
from netcode.p2p import P2PSession
from netcode.runner import SessionRunner


class EpisodeRunner:
    """Ticks `session` against `env`; `observations` are those of the latest simulated frame."""

    def __init__(self, session: P2PSession, env: Any, observations: Mapping[str, Any]) -> None:
        self.session = session
        self.env = env
        self.runner = SessionRunner(session, env)
        self.observations: dict[str, Any] = dict(observations)
        self.rewards: dict[str, float] = {}

    def tick(self, inputs: Mapping[str, Any]) -> None:
        """One frame: poll, advance (or hold), run the batch, track where the game ends."""
        self.session.poll()
        result = self.runner.tick(inputs)
        for frame in sorted(result.steps):
            step = result.steps[frame]
            ended = bool(step["terminated"] or step["truncated"])
            if ended and (self.session.end_frame is None or frame + 1 < self.session.end_frame):
                self.session.end_frame = frame + 1
            elif not ended and self.session.end_frame == frame + 1:
                self.session.end_frame = None
        if result.steps:
            last = result.steps[max(result.steps)]
            self.observations = last["observations"]
            self.rewards = last["rewards"]

    @property
    def done(self) -> bool:
        """The game ended at `end_frame`, every input before it is confirmed and the env is there."""
        end = self.session.end_frame
        return end is not None and self.session.current_frame == end and self.session.confirmed_frame >= end - 1

    def final_checksum(self) -> str:
        """Checksum of the state at the end frame (valid once `done`)."""
        return state_hash(self.env.get_state())
