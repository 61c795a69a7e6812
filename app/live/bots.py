"""AI seats: a policy playing through the same game and netcode as a browser does.

A bot is a P2P peer living in the server process. Its packets go through the match
room's relay like anyone's (so they are validated, logged and recorded the same way);
packets for it are handed to `deliver`. The server calls `tick` at the match's fps.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

from app.live.match_room import MatchRoom, Seat
from app.live.protocol import EpisodeDone, PacketEvent
from netcode.config import SessionConfig
from netcode.episode import EpisodeRunner
from netcode.frame_ranges import within_report_limit
from netcode.p2p import P2PSession

Policy = Any  # an object with act(observation) -> action
MAX_CATCH_UP_TICKS = 100_000


class BotPeer:
    """Plays `seat` of `room` for the current episode with one policy per player."""

    def __init__(
        self, room: MatchRoom, seat: Seat, game_class: type, policies: dict[str, Policy],
        clock_ms: Callable[[], float], preload: dict[str, list[Any]] | None = None,
    ) -> None:
        self.room = room
        self.seat = seat
        self.episode = room.episode
        self.policies = policies
        self.stopped = False
        self.reported = False
        self._inbox: deque[tuple[str, str]] = deque()
        settings = room.settings
        env = game_class(settings.config)
        observations = env.reset(room.episode_seed)
        config = SessionConfig.for_env(env, fps=settings.fps, **settings.netcode)
        peers = {addr: other.players for addr, other in room.seats.items() if addr != seat.addr}
        self.session = P2PSession(config, seat.players, peers, self, clock_ms)
        if preload:
            self.session.preload(preload)
        self.runner = EpisodeRunner(self.session, env, observations)
        self._catch_up_to = max((len(actions) for actions in (preload or {}).values()), default=0)

    # The transport the session sends through and receives from.
    def send(self, to: str, data: str) -> None:
        if not self.stopped:
            self.room.relay(self.seat, PacketEvent(self.room.id, self.episode, to, data))

    def receive(self) -> list[tuple[str, str]]:
        items = list(self._inbox)
        self._inbox.clear()
        return items

    def deliver(self, sender: str, data: str) -> None:
        self._inbox.append((sender, data))

    def stop(self) -> None:
        self.stopped = True

    def tick(self) -> None:
        """One frame; a bot that took over a running episode first replays it at full speed."""
        if self.stopped:
            return
        ticks = 0
        while True:
            self._tick_once()
            ticks += 1
            if self.stopped or self.session.current_frame >= self._catch_up_to or ticks >= MAX_CATCH_UP_TICKS:
                break
            if self.session.stalled or self.session.end_frame is not None:
                break

    def _tick_once(self) -> None:
        observations = self.runner.observations
        inputs = {p: self.policies[p].act(observations.get(p)) for p in self.seat.players}
        self.runner.tick(inputs)
        if self.runner.done and not self.reported and not self.stopped:
            self.reported = True
            done = EpisodeDone(self.room.id, self.episode, self.session.current_frame, self.runner.final_checksum(),
                               within_report_limit(self.session.predicted_frames()))
            self.room.episode_done(self.seat, done)
