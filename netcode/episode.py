"""Plays one episode of a match on a P2P session, and knows when it is really over.

The game says it ended (terminated or truncated) at some frame; with predicted inputs
that may still change. `EpisodeRunner` holds the session at the end frame
(`session.end_frame`), lifts the hold if a rollback shows the game did not end there
after all, and reports `done` once every input up to the end is confirmed. Browser
workers, server bots and headless participants all play episodes this way.

A rollback may show that the game ended at a frame the session has already passed (it
predicted the game went on) and re-simulate the frames after it. The game is never stepped
past its end: `EndStates` answers those steps with the ending step's result and leaves the
env at its end state, which gives the final checksum; the session holds where it is.
A snapshot taken past the end carries the ending step's result too, but its checksum is the
game state's alone (`EndStates.checksum`), as a lockstep re-simulation computes it.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from game.hashing import state_hash
from game.snapshot import with_snapshots
from netcode.p2p import P2PSession
from netcode.requests import Request
from netcode.runner import SessionRunner


ENDED = "@episode_ended"   # the key of a snapshot taken past the end of the episode


class EndStates:
    """The env (with snapshots), never stepped past the end of its episode.

    After a step that ends the episode, further steps return that step's result again and
    leave the env alone; snapshots taken then carry that result (under `ENDED`), so a rollback
    to a frame past the end stays there. `take()` returns, for each step since the last call in
    order, the state after it when it ended the episode, else None."""

    def __init__(self, env: Any) -> None:
        self.env = with_snapshots(env)
        self._after_steps: list[Any] = []
        self._ending: dict[str, Any] | None = None

    def step(self, actions: dict[str, Any]) -> Any:
        if self._ending is not None:
            self._after_steps.append(None)
            return self._ending
        result = self.env.step(actions)
        ended = result["terminated"] or result["truncated"]
        self._after_steps.append(self.env.get_state() if ended else None)
        if ended:
            self._ending = result
        return result

    def get_state(self) -> Any:
        state = self.env.get_state()
        return state if self._ending is None else {ENDED: [state, self._ending]}

    def set_state(self, state: Any) -> None:
        self._ending = None
        if isinstance(state, dict) and ENDED in state:
            state, self._ending = state[ENDED]
        self.env.set_state(state)

    @staticmethod
    def checksum(state: Any) -> str:
        """The checksum of a state `get_state()` returned: the game's state, without the ending result."""
        if isinstance(state, dict) and ENDED in state:
            state = state[ENDED][0]
        return state_hash(state)

    def take(self) -> list[Any]:
        taken, self._after_steps = self._after_steps, []
        return taken


class EpisodeRunner:
    """Ticks `session` against `env`; `observations` are those of the latest simulated frame (or of the end)."""

    def __init__(self, session: P2PSession, env: Any, observations: Mapping[str, Any], capacity: int = 72,
                 on_requests: Callable[[list[Request]], None] | None = None) -> None:
        self.session = session
        self.env = env
        self.end_states = EndStates(env)
        self.runner = SessionRunner(session, self.end_states, capacity, on_requests, EndStates.checksum)
        self.observations: dict[str, Any] = dict(observations)
        self.rewards: dict[str, float] = {}
        self._end_state: Any = None

    def tick(self, inputs: Mapping[str, Any]) -> None:
        """One frame: poll, advance (or hold), run the batch, track where the game ends."""
        self.session.poll()
        result = self.runner.tick(inputs)
        end_states = dict(zip(sorted(result.steps), self.end_states.take()))
        for frame in sorted(result.steps):
            step = result.steps[frame]
            ended = bool(step["terminated"] or step["truncated"])
            if ended and (self.session.end_frame is None or frame + 1 < self.session.end_frame):
                self.session.end_frame = frame + 1
            elif not ended and self.session.end_frame == frame + 1:
                self.session.end_frame = None
            if ended and self.session.end_frame == frame + 1:
                self._end_state = end_states[frame]
        if result.steps:
            end = self.session.end_frame
            last = result.steps[end - 1 if end is not None and end - 1 in result.steps else max(result.steps)]
            self.observations = last["observations"]
            self.rewards = last["rewards"]

    @property
    def done(self) -> bool:
        """The game ended at `end_frame`, the env got there and every input before it is confirmed."""
        end = self.session.end_frame
        return end is not None and self.session.current_frame >= end and self.session.confirmed_frame >= end - 1

    def final_checksum(self) -> str:
        """Checksum of the state at the end frame (valid once `done`)."""
        return state_hash(self._end_state)
