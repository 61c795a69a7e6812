"""AI seats: a `netcode.client.MatchClient` fed by a policy, as a browser's worker is fed by keys.

A bot lives in the server process. Its packets go through the match room's relay like
anyone's (decoded, validated, logged and recorded the same way), packets for it are handed
to `deliver`, and its end-of-episode report is the client's `done`, sent as a participant's
`episode_done` event would be. The server calls `run_due` on the schedule of `netcode.scheduler`.
A bot holding a seat that hosts AI seats (runs="browser") plays their players too, with their policies.
"""
from __future__ import annotations

from typing import Any, Callable

from app.live.match_room import MatchRoom
from app.live.seat import Seat
from app.live.protocol import PacketEvent, parse_episode_done
from game.env import action_space_for, default_action_for
from game.paced_policy import PacedPolicy, policy_seed
from netcode.client import MatchClient
from netcode.scheduler import FixedStep
from scenes.ai_seat import as_ai_seat

Policy = Any  # an object with act(observation) -> action
MAX_REPLAY_TICKS = 100_000  # ticks of one round spent replaying an episode taken over mid-way


class BotPeer:
    """Plays `seat` of `room` for the current episode with one policy per player.

    `make_policy(spec, player, action_space, env, seed)` builds a player's policy from the seat's policy
    (a spec or an AISeat), which plays with the seat's reaction delay and action repeat (PacedPolicy); its
    seed comes from the seat's recorded seed (game.paced_policy.policy_seed). `now()` is the server's clock in
    seconds; `preload` is the episode's input log when the bot takes over a seat.
    """

    def __init__(self, room: MatchRoom, seat: Seat, make_policy: Callable[..., Policy], now: Callable[[], float],
                 preload: dict[str, list[Any]] | None = None) -> None:
        self.room = room
        self.seat = seat
        self.client = MatchClient(room.start_payload(seat), room.game_class, lambda: now() * 1000.0, preload)
        env = self.client.env
        self.policies: dict[str, PacedPolicy] = {}
        for played in (seat, *room.hosted(seat)):   # and the AI seats (runs="browser") its peer plays
            ai = as_ai_seat(played.policy)
            base_seed = ai.seat_seed(room.seed, played.addr)
            self.policies.update({p: PacedPolicy(make_policy(played.policy, p, action_space_for(env, p), env,
                                                             policy_seed(base_seed, room.episode, i)),
                                                 reaction_delay_frames=ai.reaction_delay_frames,
                                                 action_repeat=ai.action_repeat, default_action=default_action_for(env, p))
                                  for i, p in enumerate(played.players)})
        self.schedule = FixedStep(1.0 / self.client.config.fps, now())
        self.stopped = False
        self.reported = False

    def deliver(self, sender: str, data: str) -> None:
        self.client.receive(sender, data)

    def stop(self) -> None:
        self.stopped = True

    def run_due(self, now: float) -> None:
        """The ticks due at `now` (seconds); a bot that took over a running episode first replays
        its logged frames at full speed."""
        for _ in range(MAX_REPLAY_TICKS):
            if self.stopped or not self.client.catching_up:
                break
            self._tick()
        for _ in range(self.schedule.due(now)):
            if self.stopped:
                return
            self._tick()
            self.schedule.ticked(self.client.take_skip_frames())

    def _tick(self) -> None:
        client = self.client
        observations, frame = client.observations, client.session.current_frame
        actions = {} if client.done is not None else {p: policy.act(observations.get(p), frame)
                                                      for p, policy in self.policies.items()}
        client.tick(actions)
        for packet in client.outbox():
            if self.stopped:
                return
            self.room.relay(self.seat, PacketEvent(packet["match"], packet["episode"], packet["to"], packet["data"]))
        if client.done is not None and not self.reported and not self.stopped:
            self.reported = True
            self.room.episode_done(self.seat, parse_episode_done(client.done))
