"""AI seats (app/live/bots.py): a MatchClient fed by a policy, in a match room on a fake clock,
playing against a human seat's MatchClient as the headless participant drives it."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from app.data.recording import RecordingWriter, make_header
from app.live.bots import BotPeer
from app.live.match_room import MatchRoom, MatchSettings
from app.live.seat import AI, HUMAN, Seat
from app.live.protocol import PacketEvent, parse_episode_done
from game.env import default_action_for
from game.games.pong import Pong
from game.spaces import Discrete
from netcode.client import MatchClient
from netcode.scheduler import MAX_CATCH_UP
from scenes.policies import Bot, resolve_policy
from tests.server_fixtures import SettlesAtOnce

FPS = 60
PERIOD = 1.0 / FPS


def make_policy(spec: str, player: str, action_space: Any, env: Any, seed: int) -> Bot:
    return Bot(resolve_policy(spec), player=player, action_space=action_space,
               default_action=default_action_for(env, player), seed=seed)


class Host(SettlesAtOnce):
    """A server stand-in: human seats are MatchClients it ticks itself; bots are BotPeers."""

    def __init__(self) -> None:
        self.clock = 0.0
        self.humans: dict[str, MatchClient] = {}
        self.bots: list[BotPeer] = []
        self.ended: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.room: MatchRoom | None = None
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def send(self, seat: Seat, event: str, payload: dict[str, Any]) -> None:
        self.sent.append((seat.addr, event, payload))
        if event == "match_start":
            assert self.room is not None
            self.humans[seat.addr] = MatchClient(payload, self.room.game_class, lambda: self.clock * 1000.0)
        elif event == "packet" and seat.addr in self.humans:
            self.humans[seat.addr].receive(payload["from"], payload["data"])

    def start_bot(self, room: MatchRoom, seat: Seat, preload: dict[str, list[Any]] | None) -> BotPeer:
        bot = BotPeer(room, seat, make_policy, lambda: self.clock, preload)
        self.bots.append(bot)
        return bot

    def match_ended(self, room: MatchRoom, reason: str) -> None:
        self.ended.append(reason)

    def log_event(self, room: MatchRoom, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def now(self) -> float:
        return self.clock

    def tick_humans(self, room: MatchRoom) -> None:
        for addr, client in list(self.humans.items()):
            seat = room.seats[addr]
            if seat.kind != HUMAN:
                continue
            client.tick({} if client.done else {p: 1 for p in client.players})
            for packet in client.outbox():
                room.relay(seat, PacketEvent(packet["match"], packet["episode"], packet["to"], packet["data"]))
            if client.done and seat.done is None:
                room.episode_done(seat, parse_episode_done(client.done))


def make_room(tmp_path: Path, seats: dict[str, Seat], on_partner_drop: str = "ai",
              config: dict[str, Any] | None = None) -> tuple[MatchRoom, Host]:
    host = Host()
    settings = MatchSettings(
        game="game.games.pong:Pong", config=config or {"max_score": 1, "max_frames": 240}, players=("left", "right"),
        action_spaces={"left": Discrete(3), "right": Discrete(3)}, episodes=1, fps=FPS, netcode={"input_delay": 1},
        keys={}, on_partner_drop=on_partner_drop, fill_policy="random",
    )
    header = make_header(match="m1", experiment="x", scene="pong", created_at="now", game=settings.game,
                         game_source="", config=settings.config, players=["left", "right"], seats={}, netcode={},
                         fps=FPS)
    path = tmp_path / f"m1-{uuid.uuid4().hex}.jsonl"
    room = MatchRoom("m1", "pong", settings, seats, host, RecordingWriter(str(path), header), seed=7, game_class=Pong)
    host.room = room
    room.start_next_episode()
    return room, host


def play(room: MatchRoom, host: Host, seconds: float) -> None:
    """Both sides at FPS on the fake clock until the match ends or `seconds` pass."""
    end = host.clock + seconds
    while not room.ended and host.clock < end:
        host.clock += PERIOD
        for bot in host.bots:
            if not bot.stopped:
                bot.run_due(host.clock)
        host.tick_humans(room)


def test_an_ai_seat_plays_an_episode_and_reports_it_like_a_participant(tmp_path: Path) -> None:
    seats = {"s0": Seat("s0", ("left",), AI, policy="random"), "s1": Seat("s1", ("right",), HUMAN, participant="p")}
    room, host = make_room(tmp_path, seats)
    assert len(host.bots) == 1 and host.bots[0].client.players == ("left",)
    play(room, host, 20.0)
    assert host.ended == ["completed"] and not [e for e in host.events if e[0] == "desync"]
    bot_done, human_done = seats["s0"].done, seats["s1"].done
    assert bot_done is not None and human_done is not None
    assert (bot_done.frame, bot_done.checksum) == (human_done.frame, human_done.checksum)
    assert bot_done.predicted is not None and set(bot_done.predicted) <= {"right"}


def test_a_bot_taking_over_a_seat_replays_the_episode_at_full_speed_then_keeps_time(tmp_path: Path) -> None:
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="pa"),
             "s1": Seat("s1", ("right",), HUMAN, participant="pb")}
    room, host = make_room(tmp_path, seats)
    play(room, host, 1.5)
    logged = min(len(actions) for actions in room.log.actions.values())
    assert logged > 60
    room.seat_lost(seats["s0"], "silent")
    del host.humans["s0"]
    bot = host.bots[0]
    assert bot.client.catching_up
    bot.run_due(host.clock)   # one round: the whole log, not MAX_CATCH_UP ticks
    assert not bot.client.catching_up and bot.client.session.current_frame >= logged - 1
    # then back on the fixed step: a late round runs at most MAX_CATCH_UP ticks
    next_at = bot.schedule.next_at
    bot.run_due(next_at + 6 * PERIOD)
    assert bot.schedule.next_at == pytest.approx(next_at + MAX_CATCH_UP * PERIOD)
    play(room, host, 20.0)
    assert host.ended == ["completed"] and not [e for e in host.events if e[0] == "desync"]
    assert seats["s0"].done is not None and seats["s1"].done is not None
    assert seats["s0"].done.checksum == seats["s1"].done.checksum
