"""The match channel (docs/protocol.md): a WebSocket per seat holder opened with match_start's signed
ticket, carrying netcode packets as `"<episode> <addr> <data>"` frames. The real eventlet server in a
subprocess, real Socket.IO and WebSocket clients (websocket-client), real matches."""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator

import pytest
import requests
import websocket

from app.live.metrics import parse_metrics
from app.live.tickets import Tickets
from app.participant.headless import HeadlessParticipant
from app.participant.socket_client import OrderedClient, channel_url
from game.env import default_action_for
from game.loader import load_class
from netcode.client import MatchClient
from tests.server_fixtures import Server, pid, replay_recording, run_together

EXPERIMENT = '''
from scenes import End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="chan", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1000, "max_frames": 300},
          humans=("left", "right"), fps=60, waiting_room=WaitingRoom(timeout_s=30, on_timeout="leave"),
          on_partner_drop="ai", grace_s=15),
    End(id="end", html="<p>Thanks</p>", completion_code="CHAN"),
])
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("channel")
    (folder / "chan.py").write_text(EXPERIMENT)
    running = Server(["serve", str(folder / "chan.py")], folder / "data")
    yield running
    running.stop()
    assert "Traceback" not in running.log_path.read_text()


def metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse_metrics(requests.get(server.url + "/metrics", timeout=5).text)


def figure(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def secret(server: Server) -> str:
    return (server.data_dir / "chan" / "secret_key").read_text().strip()


# ----------------------------------------------------------------------------- raw clients


class Seated:
    """A participant who entered, connected Socket.IO and readied: `start` is their match_start."""

    def __init__(self, server: Server) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        with requests.Session() as http:
            assert http.get(server.url + "/", params={"PROLIFIC_PID": pid()}, timeout=10).status_code == 200
            cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        self.sio = OrderedClient(reconnection=False, handle_sigint=False)
        for name in ("scene", "match_start", "match_end", "seat_changed", "error", "packet"):
            self.sio.on(name, lambda payload=None, name=name: self.events.put((name, payload)))
        self.sio.connect(server.url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=10)
        assert self.next("scene")["scene"]["kind"] == "match"
        self.sio.emit("ready", {"index": 0})
        self.start: dict[str, Any] = {}

    def next(self, name: str, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got, payload = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if got == name:
                return payload

    def wait_start(self) -> None:
        self.start = self.next("match_start")

    @property
    def ticket(self) -> str:
        return str(self.start["channel"]["ticket"])

    def packet(self) -> str:
        """A valid input packet of this seat's first frame, as its netcode client sends it."""
        client = MatchClient(self.start, load_class(self.start["game"]), clock=lambda: time.monotonic() * 1000)
        client.tick({p: default_action_for(client.env, p) for p in client.players})
        return str(client.outbox()[0]["data"])

    def close(self) -> None:
        self.sio.disconnect()


def seated_pair(server: Server) -> tuple[Seated, Seated]:
    a, b = Seated(server), Seated(server)
    a.wait_start()
    b.wait_start()
    return (a, b) if a.start["seat"] == "s0" else (b, a)


class Channel:
    """A raw match channel: frames read on a thread into `frames`; `closed` holds (code, reason)."""

    def __init__(self, server: Server, ticket: str | bytes, url: str = "/match-ws") -> None:
        self.ws = websocket.create_connection(channel_url(server.url, url), timeout=10, enable_multithread=True)
        self.frames: queue.Queue[str] = queue.Queue()
        self.closed: tuple[int | None, str] | None = None
        self.done = threading.Event()
        if isinstance(ticket, bytes):
            self.ws.send_binary(ticket)
        else:
            self.ws.send(ticket)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=False)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.closed = (int.from_bytes(data[:2], "big") if len(data) >= 2 else None,
                                   data[2:].decode())
                    return
                self.frames.put(data.decode())
        except (websocket.WebSocketException, OSError):
            self.closed = self.closed or (None, "broken")
        finally:
            self.done.set()
            self.ws.shutdown()

    def next(self, timeout: float = 10) -> str:
        return self.frames.get(timeout=timeout)

    def wait_closed(self, timeout: float = 10) -> tuple[int | None, str]:
        assert self.done.wait(timeout), "the server did not close the channel"
        assert self.closed is not None
        return self.closed

    def nothing_for(self, seconds: float) -> bool:
        try:
            frame = self.frames.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected frame {frame!r}")

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except (websocket.WebSocketException, OSError):
            pass


# ----------------------------------------------------------------------------- whole matches


def test_a_match_relays_over_the_channel_and_socketio_still_works(server: Server) -> None:
    before = metrics(server)
    starts: list[dict[str, Any]] = []
    a = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=1,
                            on_event=lambda name, payload: starts.append(payload) if name == "match_start" else None)
    b = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=2)
    results = run_together([a, b], timeout=60)
    for result in results:
        assert result.completed and result.ok and not result.errors, result.to_json()
        assert result.packets_by_path.get("channel", 0) > 10 * result.packets_by_path.get("socketio", 0)
    after = metrics(server)
    by_channel = figure(after, "coplay_packets_received_total", path="channel") - \
        figure(before, "coplay_packets_received_total", path="channel")
    by_socketio = figure(after, "coplay_packets_received_total", path="socketio") - \
        figure(before, "coplay_packets_received_total", path="socketio")
    assert by_channel > 10 * max(by_socketio, 1), (by_channel, by_socketio)
    # One lone match: the pump's rounds (a wake-up each) carry about one packet each.
    batches = figure(after, "coplay_channel_batches_total") - figure(before, "coplay_channel_batches_total")
    assert by_channel / 2 < batches <= 1.1 * by_channel + 10, (batches, by_channel)
    assert figure(after, "coplay_channel_connections_total", result="ok") - \
        figure(before, "coplay_channel_connections_total", result="ok") == 2
    assert figure(after, "coplay_channels_open") == 0
    match = results[0].matches[0]["match"]
    assert replay_recording(server, "chan", match).ok

    # A ticket of the ended match opens nothing.
    ended = Channel(server, starts[0]["channel"]["ticket"])
    code, reason = ended.wait_closed()
    assert code == 4410 and "over" in reason

    # A client without the channel plays over Socket.IO `packet` events beside one with it.
    old = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=3, channel=False)
    new = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=4)
    old_result, new_result = run_together([old, new], timeout=60)
    assert old_result.completed and old_result.ok and new_result.completed and new_result.ok
    assert set(old_result.packets_by_path) == {"socketio"}
    final = metrics(server)
    assert figure(final, "coplay_packets_received_total", path="socketio") - \
        figure(after, "coplay_packets_received_total", path="socketio") >= old_result.packets_by_path["socketio"] * 0.9


class BreaksItsChannel(HeadlessParticipant):
    """Its match channel's connection breaks once, at frame 60 (the Socket.IO connection stays)."""

    broke = False

    def _service_episode(self, ep: Any, now: float) -> None:
        super()._service_episode(ep, now)
        channel = self._channel
        if not self.broke and channel is not None and channel.ready and ep.client.session.current_frame >= 60:
            self.broke = True
            assert channel.ws is not None
            channel.ws.sock.shutdown(2)   # SHUT_RDWR: no close frame, as a network failure


def test_a_broken_channel_rejoins_with_a_fresh_ticket_and_the_match_completes(server: Server) -> None:
    before = metrics(server)
    breaker = BreaksItsChannel(server.url, {"PROLIFIC_PID": pid()}, seed=5)
    partner = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=6)
    broke, stayed = run_together([breaker, partner], timeout=60)
    for result in (broke, stayed):
        assert result.completed and result.ok and not result.errors, result.to_json()
        assert [m["reason"] for m in result.matches] == ["completed"]
    assert breaker.broke and len(broke.rejoins) == 1, broke.to_json()
    after = metrics(server)
    assert figure(after, "coplay_channel_connections_total", result="ok") - \
        figure(before, "coplay_channel_connections_total", result="ok") == 3
    assert replay_recording(server, "chan", broke.matches[0]["match"]).ok


# ----------------------------------------------------------------------------- tickets and frames


def test_bad_expired_and_other_seat_tickets_are_refused_and_change_nothing(server: Server) -> None:
    left, right = seated_pair(server)
    try:
        real = Tickets(secret(server)).verify(left.ticket)
        assert (real.match, real.seat, real.gen) == (left.start["match"], "s0", left.start["gen"])
        before = metrics(server)
        refusals = {
            "not a ticket": (4401, "signature"),
            left.ticket[:-3] + ("AAA" if not left.ticket.endswith("AAA") else "BBB"): (4401, "signature"),
            Tickets("another server's key").issue(real.match, "s0", real.participant, real.gen): (4401, "signature"),
            Tickets(secret(server), clock=lambda: time.time() - 120).issue(real.match, "s0", real.participant,
                                                                             real.gen): (4401, "older than 60 s"),
            Tickets(secret(server)).issue(real.match, "s1", real.participant, real.gen): (4410, "no longer"),
            Tickets(secret(server)).issue(real.match, "s0", real.participant, real.gen + 1): (4410, "no longer"),
            Tickets(secret(server)).issue("no-such-match", "s0", real.participant, real.gen): (4410, "over"),
        }
        for ticket, (code, words) in refusals.items():
            closed = Channel(server, ticket).wait_closed()
            assert closed[0] == code and words in closed[1], (ticket, closed)
        assert Channel(server, left.ticket.encode()).wait_closed()[0] == 4401   # a binary frame is no ticket
        after = metrics(server)
        assert figure(after, "coplay_channel_connections_total", result="bad_ticket") - \
            figure(before, "coplay_channel_connections_total", result="bad_ticket") == 4
        assert figure(after, "coplay_channel_connections_total", result="ticket_expired") - \
            figure(before, "coplay_channel_connections_total", result="ticket_expired") == 1
        assert figure(after, "coplay_channel_connections_total", result="ok") == \
            figure(before, "coplay_channel_connections_total", result="ok")
        assert left.events.empty() or all(name != "seat_changed" for name, _ in list(left.events.queue))

        # Nothing changed: the real tickets still open both seats' channels, and they relay.
        mine, theirs = Channel(server, left.ticket), Channel(server, right.ticket)
        assert mine.next() == "ok" and theirs.next() == "ok"
        data = left.packet()
        mine.ws.send(f"0 s1 {data}")
        assert theirs.next() == f"0 s0 {data}"
        mine.close()
        theirs.close()
    finally:
        left.close()
        right.close()


def test_malformed_frames_get_a_reason_and_change_nothing(server: Server) -> None:
    left, right = seated_pair(server)
    try:
        mine, theirs = Channel(server, left.ticket), Channel(server, right.ticket)
        assert mine.next() == "ok" and theirs.next() == "ok"
        data = left.packet()
        before = metrics(server)
        bad = ["", "garbage", "0 s1", "x s1 " + data, "-1 s1 " + data, "0 s9 " + data, "0 s0 " + data,
               "0 s1 not a packet", "0 s1 " + "a" * 20_000]
        for frame in bad:
            mine.ws.send(frame)
            reason = mine.next()
            assert reason.startswith("! ") and len(reason) > 10, (frame[:40], reason)
        mine.ws.send_binary(b"0 s1 " + data.encode())
        assert mine.next().startswith("! binary frames")
        assert theirs.nothing_for(0.3)
        after = metrics(server)
        for path in ("channel", "socketio"):   # (stand-ins of other tests' matches relay meanwhile)
            assert figure(after, "coplay_packets_received_total", path=path) == \
                figure(before, "coplay_packets_received_total", path=path)
        assert figure(after, "coplay_refused_events_total", event="packet") - \
            figure(before, "coplay_refused_events_total", event="packet") == len(bad) + 1
        mine.ws.send(f"0 s1 {data}")   # and the channel still relays
        assert theirs.next() == f"0 s0 {data}"
        assert figure(metrics(server), "coplay_packets_received_total", path="channel") == \
            figure(after, "coplay_packets_received_total", path="channel") + 1
        mine.close()
        theirs.close()
    finally:
        left.close()
        right.close()


def test_a_second_channel_for_the_seat_closes_the_first(server: Server) -> None:
    left, right = seated_pair(server)
    try:
        first, theirs = Channel(server, right.ticket), Channel(server, left.ticket)
        assert first.next() == "ok" and theirs.next() == "ok"
        second = Channel(server, right.ticket)
        assert second.next() == "ok"
        code, reason = first.wait_closed()
        assert code == 4410 and "newer channel" in reason
        data = left.packet()
        theirs.ws.send(f"0 s1 {data}")
        assert second.next() == f"0 s0 {data}"
        second.close()
        theirs.close()
    finally:
        left.close()
        right.close()


def test_a_flood_on_the_channel_spends_the_participants_budget(server: Server) -> None:
    left, right = seated_pair(server)
    try:
        mine = Channel(server, left.ticket)
        assert mine.next() == "ok"
        before = metrics(server)
        flood_until = time.monotonic() + 4.0
        try:
            while time.monotonic() < flood_until and mine.closed is None:
                for _ in range(50):
                    mine.ws.send("0 s1 x")
        except (websocket.WebSocketException, OSError):
            pass   # closed by the server mid-flood
        code, reason = mine.wait_closed(timeout=20)
        # The participant's budget is spent, not only the channel's: for the next few seconds a new
        # channel is refused, and so is the participant's next Socket.IO message.
        again = Channel(server, left.ticket)
        left.sio.emit("advance", {"index": 0, "data": {}})
        assert code == 1008 and "per second" in reason, (code, reason)
        assert again.wait_closed(timeout=15)[0] == 1013
        assert left.next("error", timeout=15)["reason"].startswith(("disconnected", "too many events"))
        told = [frame for frame in list(mine.frames.queue) if frame.startswith("! too many events")]
        assert told, list(mine.frames.queue)[:5]
        after = metrics(server)
        assert figure(after, "coplay_refusals_total", why="rate_limited") - \
            figure(before, "coplay_refusals_total", why="rate_limited") > 100
    finally:
        left.close()
        right.close()
