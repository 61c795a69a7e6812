"""The relay registry and messages on a real redis-server, the match description's round trip, the secret."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from redis import RedisError

from app.live.dashboard import _match
from app.live.match_room import MatchSettings
from app.live.seat import Seat
from app.live.protocol import PacketEvent
from app.live.spectator import LiveView
from app.live.tickets import Tickets
from app.data.recording import recording_path
from app.relay.bus import HEARTBEAT_TTL_S, Bus, RelayCard, RelayError, relay_secret
from app.relay.load import LoadMeter, match_status
from app.relay.room import RemoteRoom
from app.relay.worker import RelayHost
from app.relay.wire import seats_in, seats_out, settings_in, settings_out
from game.games.pong import Pong
from scenes.ai_seat import AISeat
from tests.relay_fixtures import RedisServer, redis_server  # noqa: F401  (a fixture)
from tests.test_match_room import make_room, packet


def test_a_card_lives_while_renewed_and_expires_after_its_ttl(redis_server: RedisServer) -> None:  # noqa: F811
    bus = Bus(redis_server.url, "study")
    other = Bus(redis_server.url, "another-study")
    bus.heartbeat(RelayCard("r1", "ws://127.0.0.1:7001/match-ws", 3, 42, "h"))
    bus.heartbeat(RelayCard("r2", "ws://127.0.0.1:7002/match-ws", 0, 43, "h"))
    assert set(bus.live_relays()) == {"r1", "r2"} and other.live_relays() == {}
    assert bus.live_relays()["r1"].matches == 3
    bus.leave("r2")
    assert set(bus.live_relays()) == {"r1"}
    time.sleep(HEARTBEAT_TTL_S + 0.5)
    assert bus.live_relays() == {}


def test_messages_keep_their_order_and_recordings_are_taken_once(redis_server: RedisServer) -> None:  # noqa: F811
    bus = Bus(redis_server.url, "study")
    for i in range(3):
        bus.to_relay("r1", {"type": "end", "n": i})
    assert [bus.read("to-relay:r1")["n"] for _ in range(3)] == [0, 1, 2]  # type: ignore[index]
    assert bus.read("to-relay:r1", timeout_s=1) is None
    bus.to_relay("r1", {"type": "end"})
    bus.forget("r1")   # a dead relay's unread commands go with it
    assert bus.read("to-relay:r1", timeout_s=1) is None
    bus.put_recording("m1", b"header\nline\n")
    assert bus.take_recording("m1") == b"header\nline\n" and bus.take_recording("m1") is None


def test_an_unreachable_redis_is_a_clear_error() -> None:
    with pytest.raises(RelayError, match="cannot reach Redis"):
        Bus("redis://127.0.0.1:1/0", "study")


def test_the_ticket_secret_is_configured_and_long_enough() -> None:
    with pytest.raises(RelayError, match="COPLAY_RELAY_SECRET"):
        relay_secret({})
    with pytest.raises(RelayError, match="at least 32"):
        relay_secret({"COPLAY_RELAY_SECRET": "short"})
    assert relay_secret({"COPLAY_RELAY_SECRET": "x" * 32}) == "x" * 32


def test_a_match_description_survives_the_trip_to_a_relay() -> None:
    env = Pong({})
    players = tuple(env.players)
    fill = AISeat("random", reaction_delay_frames=6, action_repeat=2, seed=7, reveal=True)
    settings = MatchSettings(game="game.games.pong:Pong", config={"max_frames": 10}, players=players,
                             action_spaces={p: env.action_space for p in players}, episodes=2, fps=60,
                             netcode={"input_delay": 2}, keys={"left": {}}, on_partner_drop="ai", fill_policy=fill,
                             grace_s=5.0, stand_in="idle", reveal_ai=False)
    back = settings_in(settings_out(settings), Pong)
    assert (back.game, back.config, back.players, back.episodes, back.fps, back.netcode, back.keys, back.grace_s) == \
        (settings.game, settings.config, settings.players, 2, 60, {"input_delay": 2}, {"left": {}}, 5.0)
    assert repr(back.fill_policy) == repr(fill) and back.stand_in is not None and back.stand_in.spec == "idle"
    assert set(back.action_spaces) == set(players)
    seats = {"s0": Seat("s0", (players[0],), "human", participant="p1"),
             "s1": Seat("s1", (players[1],), "ai", policy=fill)}
    again = seats_in(seats_out(seats))
    assert [(s.addr, s.players, s.kind, s.participant) for s in again.values()] == \
        [(s.addr, s.players, s.kind, s.participant) for s in seats.values()]
    assert again["s1"].info(5) == seats["s1"].info(5)


def test_a_relay_reports_its_load_and_its_matches_progress_and_the_coordinator_shows_them(tmp_path: Path) -> None:
    room, host = make_room(tmp_path)
    meter = LoadMeter(room.metrics)
    assert meter.take(100.0, 5.0).packets_per_s == 0.0   # the first beat only sets the baseline
    s0, s1 = room.seats["s0"], room.seats["s1"]
    room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [0, [1, 1, 2]]})))
    room.relay(s1, PacketEvent("m1", 0, "s0", packet({"right": [0, [2, 0]]})))
    meter.sample(0.030)
    meter.sample(0.010)
    load = meter.take(102.0, 6.0)
    assert load.loop_lag_ms == 30.0 and load.relay_ms > 0 and load.relay_p99_ms is not None
    assert load.packets_per_s == 1.0 and load.cpu_percent == 50.0
    assert meter.take(103.0, 6.0).loop_lag_ms == 0.0   # the worst since the previous beat only
    s0.ping_ms = 42.0
    status = json.loads(json.dumps(match_status(room, host.now())))   # as it travels in the heartbeat

    remote = RemoteRoom("m1", "pong", room.settings, seats_in(seats_out(room.seats)), host, None, 7, Pong,
                        relay_id="r1")
    assert _match(remote, 0.0)["frame"] == 0 and _match(remote, 0.0)["relay"] == "r1"
    remote.progress(status, 50.0)
    shown = _match(remote, 50.0)
    assert shown["frame"] == 2 and shown["episode"] == 0 and shown["seats"][0]["ping_ms"] == 42.0
    assert list(remote.rtt_samples) == status["rtt_ms"]
    # The live view re-simulates inputs the coordinator does not have: it says so instead of an empty view.
    view = LiveView(remote).frame()
    assert "runs on relay r1" in view["unsupported"] and view["ended"] is False
    assert "unsupported" not in LiveView(room).frame() and _match(room, 0.0)["relay"] is None


class PausingBus(Bus):
    """A relay's bus whose Redis can be down (reports fail at once) or hang right after a heartbeat it took."""

    def __init__(self, redis_db: RedisServer) -> None:
        super().__init__(redis_db.url, "study")
        self.redis_db = redis_db
        self.down = False
        self.pause_after_beat = False
        self.paused = threading.Event()

    def heartbeat(self, card: RelayCard) -> None:
        super().heartbeat(card)
        if self.pause_after_beat:
            self.pause_after_beat = False
            self.redis_db.process.send_signal(signal.SIGSTOP)
            self.paused.set()

    def to_coordinator(self, message: dict[str, Any]) -> None:
        if self.down:
            raise RedisError("Redis is down (test)")
        super().to_coordinator(message)


def test_a_relay_handing_over_to_a_hung_redis_leaves_its_lock_free_and_keeps_the_reports_order(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    """While the heartbeat's hand-over waits for a hung Redis, the matches (which relay packets under the
    relay's lock) go on; what is said meanwhile queues behind, and everything arrives once, in order."""
    bus = PausingBus(redis_server)
    host = RelayHost(bus, "r1", "ws://127.0.0.1:1/match-ws", str(tmp_path), Tickets("x" * 32),
                     spawn=lambda fn, *args: None, sleep=time.sleep)
    bus.down = True
    for n in range(3):
        host._tell({"type": "log", "n": n})   # Redis is down: they wait for the hand-over
    os.makedirs(tmp_path / "recordings")
    with open(recording_path(str(tmp_path), "m1"), "wb") as file:
        file.write(b"header\n")
    host._unsent.append("m1")   # as match_ended leaves a recording Redis did not take
    bus.down, bus.pause_after_beat = False, True
    beats = threading.Thread(target=host.run_heartbeats, daemon=True)
    beats.start()
    paused = True
    try:
        assert bus.paused.wait(10)
        time.sleep(0.5)   # the hand-over is now blocked in Redis
        assert host.lock.acquire(timeout=2), "the relay lock is held while Redis hangs: every match stalls"
        try:
            host._tell({"type": "log", "n": 3})   # a match reports meanwhile: it queues behind the others
        finally:
            host.lock.release()
        redis_server.process.send_signal(signal.SIGCONT)
        paused = False
        reports = [bus.read("to-coordinator", timeout_s=5) for _ in range(4)]
        assert [r["n"] for r in reports if r] == [0, 1, 2, 3]
        assert bus.take_recording("m1") == b"header\n"
        time.sleep(2.5)   # more heartbeats: nothing is handed over twice
        assert bus.read("to-coordinator", timeout_s=1) is None
    finally:
        if paused:
            redis_server.process.send_signal(signal.SIGCONT)
        host.stopping = True
        beats.join(timeout=10)
