"""The relay registry and messages on a real redis-server, the match description's round trip, the secret."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, cast

import pytest
import redis

from app.live.dashboard import _match
from app.live.match_room import MatchRoom, MatchSettings
from app.live.metrics import Metrics
from app.live.seat import Seat
from app.live.protocol import PacketEvent
from app.live.spectator import LiveView
from app.live.tickets import Tickets
from app.data.recording import RecordingWriter, make_header, recording_path
from app.relay.bus import HEARTBEAT_TTL_S, Bus, RelayCard, RelayError, relay_secret
from app.relay.load import LoadMeter, match_status
from app.relay.room import RelayPool, RemoteRoom
from app.relay.worker import RelayHost
from app.relay.wire import seats_in, seats_out, settings_in, settings_out
from game.games.pong import Pong
from scenes.ai_seat import AISeat
from tests.relay_fixtures import RedisServer, redis_server  # noqa: F401  (a fixture)
from tests.test_match_room import make_room, packet
from tests.test_relays import wait_for


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


class Coordinator:
    """The coordinator's side of the reports: a real `RelayPool` on its own Bus, whose Hub notes what it emits."""

    def __init__(self, redis_db: RedisServer, tmp_path: Path, bus: Bus | None = None) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []
        self.logged: list[str] = []
        self.ended: list[str] = []
        self.lock = threading.RLock()
        hub = SimpleNamespace(metrics=Metrics(process=False), sid_of={"pa": "sid-a"}, experiment_dir=str(tmp_path),
                              services=SimpleNamespace(emit=lambda event, payload, to: self.emitted.append((event, payload))),
                              store=SimpleNamespace(log_event=lambda kind, data, match_id: self.logged.append(kind)),
                              lock=self.lock, match_ended=lambda room, reason: self.ended.append(reason))
        self.pool = RelayPool(bus or Bus(redis_db.url, "study"), cast(Any, hub), Tickets("x" * 32), None, time.sleep)
        room, _ = make_room(tmp_path)
        self.pool.rooms["m1"] = RemoteRoom("m1", "pong", room.settings, seats_in(seats_out(room.seats)), hub, None, 7,
                                           Pong, relay_id="r1", pool=self.pool)

    def take_all(self) -> list[int]:
        """Handle every report on the queue, in order; the `n` of each one emitted to participant pa."""
        while (message := self.pool.bus.read("to-coordinator", timeout_s=1)) is not None:
            self.pool.take(message)
        return [payload["n"] for _, payload in self.emitted]


def relay_host(bus: Bus, tmp_path: Path, relay_id: str = "r1") -> RelayHost:
    return RelayHost(bus, relay_id, "ws://127.0.0.1:1/match-ws", str(tmp_path), Tickets("x" * 32),
                     spawn=lambda fn, *args: None, sleep=time.sleep)


def say(host: RelayHost, n: int) -> None:
    """What a match does on the relay: under its lock, tell participant pa something (a seat_changed)."""
    with host.lock:
        host.send(Seat("s0", ("left",), "human", participant="pa"), "seat_changed", {"match": "m1", "n": n})


def in_redis(redis_db: RedisServer) -> list[bytes]:
    return cast(list[bytes], redis_db.client.lrange("coplay:study:to-coordinator", 0, -1))


@contextmanager
def sending(host: RelayHost) -> Iterator[None]:
    """The relay's sender running, as `coplay relay` runs it (a thread here, a green thread there)."""
    sender = threading.Thread(target=host.run_sender, daemon=True)
    sender.start()
    try:
        yield
    finally:
        host.stopping = True
        sender.join(timeout=10)


@contextmanager
def paused(redis_db: RedisServer) -> Iterator[None]:
    """Redis hangs (SIGSTOP): connections open, nothing answers; it resumes on leaving."""
    redis_db.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        redis_db.process.send_signal(signal.SIGCONT)


def test_a_report_while_redis_hangs_leaves_the_relay_lock_free(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    """A match reporting (under the relay lock) while Redis hangs does not wait for Redis: the other matches,
    which relay packets under the same lock, go on; the report arrives once Redis answers."""
    host = relay_host(Bus(redis_server.url, "study"), tmp_path)
    coordinator = Coordinator(redis_server, tmp_path)
    with sending(host):
        say(host, 0)
        wait_for(lambda: len(in_redis(redis_server)) == 1)   # Redis fine: the report is there at once
        with paused(redis_server):
            match = threading.Thread(target=say, args=(host, 1), daemon=True)
            match.start()
            time.sleep(0.2)
            assert host.lock.acquire(timeout=2), "the relay lock is held while Redis hangs: every match stalls"
            host.lock.release()
            match.join(timeout=1)
            assert not match.is_alive(), "a report waited for the hung Redis"
        wait_for(lambda: len(in_redis(redis_server)) == 2)
    assert coordinator.take_all() == [0, 1]


class ShortTimeoutBus(Bus):
    """A relay's bus that gives up on a hung Redis after 0.3 s, so a test sees a resend within seconds."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "study")
        self.redis = redis.Redis.from_url(url, socket_timeout=0.3, socket_connect_timeout=0.3)
        self.redis.ping()   # a connection open before Redis hangs, as a running relay has


def test_reports_and_recordings_keep_their_order_across_a_hang_and_a_late_copy_is_applied_once(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    """Redis hangs longer than the relay waits for an answer: the relay sends the report again, and Redis takes
    both copies once it resumes. The coordinator applies it once; everything said meanwhile follows in order,
    a match's recording before the report that it ended."""
    host = relay_host(ShortTimeoutBus(redis_server.url), tmp_path)
    coordinator = Coordinator(redis_server, tmp_path)
    room = MatchRoom("m2", "pong", coordinator.pool.rooms["m1"].settings, {"s0": Seat("s0", ("left",), "ai")},
                     host, RecordingWriter(recording_path(str(tmp_path), "m2"), make_header(
                         match="m2", experiment="x", scene="pong", created_at="now", game="g", game_source="",
                         config={}, players=["left"], seats={}, netcode={}, fps=60)), seed=7, game_class=Pong)
    with sending(host):
        with paused(redis_server):
            say(host, 0)
            time.sleep(2.0)   # the relay gave up on its first copy and sent it again (held by Redis too)
            say(host, 1)
            with host.lock:
                room.end("done")   # its recording, then its `ended` report, wait behind
            say(host, 2)
        wait_for(lambda: len(in_redis(redis_server)) >= 5)
        time.sleep(1.5)   # any copy still on its way arrives
    reports = [json.loads(raw) for raw in in_redis(redis_server)]
    assert [r.get("payload", {}).get("n") for r in reports].count(0) >= 2, "the test meant Redis to take a copy"
    assert redis_server.client.exists("coplay:study:recording:m2")   # there for the `ended` report
    assert coordinator.take_all() == [0, 1, 2]
    assert coordinator.logged == ["recording_collected_late"]   # the match ended on the relay only (not placed here)
    assert coordinator.pool.applied.first_time(reports[-1]) is False


def test_a_full_queue_drops_old_reports_but_never_a_matchs_end(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    """While Redis is away the queue fills and its oldest plain reports go; a match's end (its recording and
    the `ended` report naming the recording's sha256) stays and arrives, with that sha256, once Redis is back."""
    host = relay_host(Bus(redis_server.url, "study"), tmp_path)
    host.outbox.limit = 3
    room = MatchRoom("m2", "pong", make_room(tmp_path)[0].settings, {"s0": Seat("s0", ("left",), "ai")},
                     host, RecordingWriter(recording_path(str(tmp_path), "m2"), make_header(
                         match="m2", experiment="x", scene="pong", created_at="now", game="g", game_source="",
                         config={}, players=["left"], seats={}, netcode={}, fps=60)), seed=7, game_class=Pong)
    with host.lock:
        room.end("done")   # the sender is not running yet: everything waits in the queue
    for n in range(5):
        say(host, n)
    host.hand_over()
    reports = [json.loads(raw) for raw in in_redis(redis_server)]
    assert [r["type"] for r in reports] == ["ended", "send", "send"], reports
    assert [r["payload"]["n"] for r in reports[1:]] == [3, 4]   # the queue held 3: the oldest reports went
    recording = redis_server.client.get("coplay:study:recording:m2")
    assert recording == Path(recording_path(str(tmp_path), "m2")).read_bytes()
    assert reports[0]["sha256"] == hashlib.sha256(recording).hexdigest()


def test_a_command_while_redis_hangs_leaves_the_hub_lock_free_and_a_late_copy_is_applied_once(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    """The coordinator gives a relayed match a command (under the Hub's lock) while Redis hangs: it does not
    wait for Redis (every participant's scene flow would). Sent once Redis answers, and taken by Redis twice
    (as a late rpush would), the relay applies it once: the seat changes holder once, not twice."""
    coordinator = Coordinator(redis_server, tmp_path)
    host = relay_host(Bus(redis_server.url, "study"), tmp_path)
    settings = coordinator.pool.rooms["m1"].settings
    host.rooms["m1"] = MatchRoom("m1", "pong", settings, {"s0": Seat("s0", ("left",), "human", participant="pa")},
                                 host, RecordingWriter(recording_path(str(tmp_path), "m1r"), make_header(
                                     match="m1", experiment="x", scene="pong", created_at="now", game="g",
                                     game_source="", config={}, players=["left"], seats={}, netcode={}, fps=60)),
                                 seed=7, game_class=Pong)
    with paused(redis_server):
        giving = threading.Thread(target=coordinator.pool.command, args=(coordinator.pool.rooms["m1"], "rejoin"),
                                  kwargs={"seat": "s0"}, daemon=True)
        giving.start()
        giving.join(timeout=1)
        assert not giving.is_alive(), "a command waited for the hung Redis"
    coordinator.pool.outbox.hand_over()
    queue = "coplay:study:to-relay:r1"
    sent = cast(list[bytes], redis_server.client.lrange(queue, 0, -1))
    assert [json.loads(raw)["type"] for raw in sent] == ["rejoin"]
    redis_server.client.rpush(queue, sent[0])   # a copy, as Redis holds one it took late
    commands = threading.Thread(target=host.run_commands, daemon=True)
    commands.start()
    wait_for(lambda: redis_server.client.llen(queue) == 0)
    host.stopping = True
    commands.join(timeout=5)
    assert host.rooms["m1"].seats["s0"].gen == 1, "the copy of the command was applied too"


def ended_report(match_id: str, recording: bytes) -> dict[str, Any]:
    """A relay's `ended` report of a completed match whose recording is `recording`."""
    return {"type": "ended", "match": match_id, "reason": "completed", "message": None, "seats": None,
            "sha256": hashlib.sha256(recording).hexdigest()}


def test_a_matchs_recording_is_collected_outside_the_hub_lock_while_redis_hangs(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    """A match ends on its relay: the coordinator fetches its recording from Redis and syncs it to disk without
    holding the Hub's lock (every participant's scene flow needs it), even while Redis hangs; it then ends."""
    coordinator = Coordinator(redis_server, tmp_path)
    recording = b'{"header": 1}\n' * 1000
    Bus(redis_server.url, "study").put_recording("m1", recording)
    with paused(redis_server):
        taking = threading.Thread(target=coordinator.pool.take, args=(ended_report("m1", recording),), daemon=True)
        taking.start()
        time.sleep(0.3)
        assert coordinator.lock.acquire(timeout=1), "the Hub's lock is held while the recording waits for Redis"
        coordinator.lock.release()
    taking.join(timeout=10)
    assert coordinator.ended == ["completed"] and coordinator.logged == []
    assert Path(recording_path(str(tmp_path), "m1")).read_bytes() == recording


def test_a_match_ends_even_when_redis_fails_to_hand_its_recording_over(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    """Redis fails (here: hangs past the coordinator's timeout) as the coordinator takes a recording: the
    match still ends, and the store says its recording was not collected (it stays on its relay)."""
    coordinator = Coordinator(redis_server, tmp_path, ShortTimeoutBus(redis_server.url))
    with paused(redis_server):
        coordinator.pool.take(ended_report("m1", b"recorded\n"))
    assert coordinator.ended == ["completed"] and "m1" not in coordinator.pool.rooms
    assert coordinator.logged == ["recording_not_collected"]


def test_a_recording_the_relay_cannot_read_ends_the_match_and_the_coordinator_says_so(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    """The relay reads a match's recording only as it hands it over; gone by then (a disk error, a deleted
    file), its `ended` report says why, and the coordinator ends the match and logs recording_not_collected."""
    coordinator = Coordinator(redis_server, tmp_path)
    host = relay_host(Bus(redis_server.url, "study"), tmp_path / "relay")
    path = recording_path(str(tmp_path / "relay"), "m1")
    room = MatchRoom("m1", "pong", coordinator.pool.rooms["m1"].settings, {"s0": Seat("s0", ("left",), "ai")},
                     host, RecordingWriter(path, make_header(
                         match="m1", experiment="x", scene="pong", created_at="now", game="g", game_source="",
                         config={}, players=["left"], seats={}, netcode={}, fps=60)), seed=7, game_class=Pong)
    with host.lock:
        room.end("completed")
    os.remove(path)
    host.hand_over()
    coordinator.take_all()
    assert coordinator.ended == ["completed"] and coordinator.logged == ["recording_not_collected"]


def test_a_report_delivered_twice_is_applied_once_and_a_restarted_relay_counts_afresh(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    host = relay_host(Bus(redis_server.url, "study"), tmp_path)
    coordinator = Coordinator(redis_server, tmp_path)
    with sending(host):
        say(host, 0)
        wait_for(lambda: len(in_redis(redis_server)) == 1)
        redis_server.client.rpush("coplay:study:to-coordinator", in_redis(redis_server)[0])   # as a late rpush would
        say(host, 1)
        wait_for(lambda: len(in_redis(redis_server)) == 3)
    assert coordinator.take_all() == [0, 1]
    restarted = relay_host(Bus(redis_server.url, "study"), tmp_path)   # same id, numbering from 1 again
    with sending(restarted):
        say(restarted, 2)
        wait_for(lambda: len(in_redis(redis_server)) == 1)
    assert coordinator.take_all() == [0, 1, 2]
