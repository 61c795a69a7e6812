"""The wire-level load generator's parts without a coplay server: two WireSeats play an episode
through a real MatchRoom (its relay checks, input log, referee and end-of-episode judgement), the
match channel client against a tiny aiohttp WebSocket server speaking the protocol, and the
generator's self-check arithmetic."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app.live.match_room import MatchRoom
from app.live.protocol import PacketEvent, parse_episode_done
from app.loadtest.selfcheck import Histogram, SelfCheck, merge, overall_verdict, verdict
from app.loadtest.wire_socket import RawMatchChannel
from app.loadtest.wire_transport import ChannelRefused, MatchChannel, channel_url
from app.loadtest.wire_match import MatchSim, SimRegistry, WireSeat, lean_packet
from app.participant.answers import Policy
from app.data.recording import read_recording
from game.games.pong import Pong
from netcode import codec
from netcode.config import SessionConfig
from tests.test_match_room import make_room

FRAMES = 150


def wire_seats(room: MatchRoom, shared: bool, netcode: dict[str, Any] | None = None) -> dict[str, WireSeat]:
    """Both seats of the room's episode as WireSeats, built from the match_start the room sent."""
    registry = SimRegistry()
    seats = {}
    for i, addr in enumerate(("s0", "s1")):
        start = {**room.start_payload(room.seats[addr]), "netcode": netcode or {}}
        env = Pong(start["config"])
        config = SessionConfig.for_env(env, fps=60, **(netcode or {}))
        key = (start["match"], start["episode"]) if shared else (start["match"], i)
        sim = registry.take(key, lambda s=start, c=config: MatchSim(Pong(s["config"]), s["seed"], ("left", "right"),
                                                                    c.desync_interval))
        seats[addr] = WireSeat(start, config, Policy("random", env, start["players"], seed=100 + i), sim)
    return seats


def play(room: MatchRoom, seats: dict[str, WireSeat], ticks: int = 400) -> list[str]:
    """Tick both seats in turn, relaying every packet through the room and on to the other seat;
    each seat's episode_done goes to the room once. Returns the packets' data."""
    sent, done = [], set()
    for tick in range(ticks):
        for addr, seat in seats.items():
            for to, data in seat.tick(tick * 1000 / 60):
                sent.append(data)
                room.relay(room.seats[addr], PacketEvent(room.id, room.episode, to, data))
                seats[to].receive(addr, data, tick * 1000 / 60 + 1)
            if seat.done is not None and addr not in done and not room.ended:
                done.add(addr)
                room.episode_done(room.seats[addr], parse_episode_done(json.loads(json.dumps(seat.done))))
        if room.ended:
            break
    return sent


@pytest.mark.parametrize("shared", [True, False], ids=["one sim per match", "a sim per seat"])
def test_wire_seats_play_an_episode_the_real_room_accepts_and_ends(tmp_path: Path, shared: bool) -> None:
    room, host = make_room(tmp_path, config={"max_score": 1_000_000, "max_frames": FRAMES})
    seats = wire_seats(room, shared)
    sent = play(room, seats)
    assert host.ended == ["completed"], "the room ends the episode only at the referee's frame and checksum"
    assert room.faults == {} and not host.events, (room.faults, host.events)   # no seat at fault, no desync
    assert all(s.done is not None and s.done["frame"] == FRAMES for s in seats.values())
    assert not any(s.desyncs for s in seats.values())
    packets = [codec.decode(d) for d in sent]
    assert all(p.kind == "input" and p.gen == 0 for p in packets)
    checked = {f for p in packets for f, _ in p.checks}
    assert checked and all(f % 10 == 0 for f in checked) and max(checked) >= FRAMES - 10
    room.recording.close()
    checks = read_recording(room.recording.path).episodes[0]["checksums"]
    for addr in ("s0", "s1"):
        claimed = {f: seen[addr] for f, seen in checks.items() if addr in seen}
        assert claimed and all(checks[f]["server"] == c for f, c in claimed.items()), addr


def test_a_wire_seat_stalls_max_prediction_frames_past_its_peer(tmp_path: Path) -> None:
    room, _ = make_room(tmp_path, config={"max_score": 1_000_000, "max_frames": FRAMES})
    seats = wire_seats(room, shared=True, netcode={"max_prediction": 5, "input_delay": 2})
    lone = seats["s0"]
    out = [lone.tick(t * 1000 / 60) for t in range(20)]
    assert lone.frame == 5 and lone.stalls == 15
    assert all(len(o) == 1 for o in out[:5]) and sum(len(o) for o in out[5:]) == 2   # then keep-alives only
    [(player, start, actions)] = codec.decode(out[0][0][1]).inputs
    assert (player, start) == ("left", 0) and actions[:2] == [0, 0]   # the input delay


@pytest.mark.parametrize("actions", [[1, 1, 0], [], ["up", "up", "up"], [[1, 2], [1, 2], 3.5, 3.5, True, None]])
def test_lean_packets_are_the_characters_the_codec_writes(actions: list[Any]) -> None:
    checks = [(1200, "a1b2c3d4"), (1230, "89ab\"cdef")]
    lean = lean_packet(2, 1, 1234, 3.0, 123456.78901234, -1.0, 0, [('"left"', 2, actions), ('"x\\u00e9"', 5, [])],
                       '"right",3', [(f, json.dumps(c)) for f, c in checks])
    assert lean == codec.input_packet(gen=2, peer_gen=1, frame=1234, adv=3.0, t=123456.78901234, echo=-1.0, hold=0,
                                      inputs={"left": (1232, actions), "x\u00e9": (1229, [])}, ack={"right": 1231},
                                      checks=checks, gone={})
    assert codec.decode(lean).inputs[0] == ("left", 1232, actions)


def test_a_resent_or_overlapping_input_is_idempotent_and_a_gap_is_ignored() -> None:
    sim = MatchSim(Pong({"max_frames": 50}), 3, ("left", "right"), 10)
    sim.know("left", 0, [1, 2, 0])
    sim.know("left", 1, [2, 0, 1])    # overlaps: only frame 3 is new
    sim.know("left", 9, [1])          # a gap: ignored
    assert sim.known["left"] == [1, 2, 0, 1]
    sim.know("right", 0, [0, 0])
    sim.run()
    assert sim.sim.frame == 2 and sim.checksums and list(sim.checksums) == [0]


# ----------------------------------------------------------------------------- the match channel


class ChannelServer:
    """The protocol of the match channel (COMMON12 / docs): ticket first, `ok` or close 4401, then
    "<episode> <addr> <data>" frames; "! reason" for a refused frame. Echoes every frame back as
    if from the other seat."""

    def __init__(self) -> None:
        self.tickets = {"good": "s0"}
        self.received: list[str] = []

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        if first.type != aiohttp.WSMsgType.TEXT or first.data not in self.tickets:
            await ws.close(code=4401, message=b"bad ticket")
            return ws
        await ws.send_str("ok")
        async for message in ws:
            episode, to, data = message.data.split(" ", 2)
            self.received.append(message.data)
            if data == "refuse-me":
                await ws.send_str("! not a packet")
            else:
                await ws.send_str(f"{episode} s1 {data}")
        return ws


LONG = "x" * 300   # a frame past 125 bytes: a 16-bit length in the header


async def _channel_round_trip(raw: bool) -> tuple[list[tuple[int, str, str]], list[str], list[str], str]:
    server = ChannelServer()
    app = web.Application()
    app.router.add_get("/match-ws", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
    frames: list[tuple[int, str, str]] = []
    refusals: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            url = channel_url(f"http://127.0.0.1:{port}", "/match-ws")
            def open_channel(ticket: str) -> MatchChannel | RawMatchChannel:
                on_frame = lambda e, s, d: frames.append((e, s, d))   # noqa: E731
                if raw:
                    return RawMatchChannel(url, ticket, on_frame, refusals.append)
                return MatchChannel(http, url, ticket, on_frame, refusals.append)
            channel = open_channel("good")
            await channel.open()
            channel.send(0, "s1", '{"v":2}')
            channel.send(1, "s1", "refuse-me")
            channel.send(12, "s1", LONG)
            for _ in range(100):
                if len(frames) + len(refusals) >= 3:
                    break
                await asyncio.sleep(0.01)
            await channel.close()
            bad = open_channel("forged")
            with pytest.raises(ChannelRefused) as refused:
                await bad.open()
    finally:
        await runner.cleanup()
    return frames, refusals, server.received, str(refused.value)


@pytest.mark.parametrize("raw", [True, False], ids=["raw socket (wire generator)", "aiohttp (agent)"])
def test_the_match_channel_sends_the_ticket_then_frames_and_reads_frames_and_refusals(raw: bool) -> None:
    # A thread of its own: a Playwright browser another test opened may own this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        frames, refusals, received, refused = pool.submit(lambda: asyncio.run(_channel_round_trip(raw))).result()
    assert received == ['0 s1 {"v":2}', "1 s1 refuse-me", f"12 s1 {LONG}"]
    assert frames == [(0, "s1", '{"v":2}'), (12, "s1", LONG)] and refusals == ["not a packet"]
    assert "4401" in refused


def test_channel_urls_resolve_against_the_server() -> None:
    assert channel_url("http://127.0.0.1:5000", "/match-ws") == "ws://127.0.0.1:5000/match-ws"
    assert channel_url("https://example.org", "/match-ws") == "wss://example.org/match-ws"
    assert channel_url("http://127.0.0.1:5000", "ws://relay:7000/m") == "ws://relay:7000/m"


# ----------------------------------------------------------------------------- self-check


def test_histograms_merge_exactly_and_give_bucketed_percentiles() -> None:
    a, b = Histogram(), Histogram()
    for ms in range(100):
        (a if ms % 2 else b).add(ms / 10)      # 0.0 .. 9.9 ms
    a.merge(b)
    assert a.n == 100 and a.max_ms == pytest.approx(9.9)
    assert a.percentile(50) == pytest.approx(5.0) and a.percentile(99) == pytest.approx(9.9)
    assert Histogram.from_json(a.to_json()).counts == a.counts
    assert Histogram().percentile(99) is None


def _report(late_ms: list[float], cpu: float = 1.0, wall: float = 10.0) -> dict[str, Any]:
    check = SelfCheck()
    for ms in late_ms:
        check.tick_late(ms / 1000)
        check.lagged(ms / 2000)
    check.sent(len(late_ms))
    report = check.to_json()
    report["cpu_seconds"], report["wall_seconds"] = [cpu], [wall]
    return report


def test_the_verdict_blames_the_generator_only_when_its_own_ticks_ran_late() -> None:
    on_time = verdict(merge([_report([1.0] * 990 + [10.0] * 10), _report([2.0] * 1000)]))
    assert not on_time["bottleneck"] and on_time["why"] == [] and on_time["processes"] == 2
    assert on_time["cpu_us_per_packet"] == pytest.approx(1e6 * 2 / 2000)
    assert overall_verdict([], on_time) == "PASS" and overall_verdict(["timeout"], on_time) == "FAIL"
    late = verdict(merge([_report([1.0] * 900 + [80.0] * 100)]))
    assert late["bottleneck"] and "ticks ran late" in late["why"][0]
    assert overall_verdict(["timeout", "disconnected (transport error)"], late) == "INCONCLUSIVE"
    assert overall_verdict([], late) == "INCONCLUSIVE"
    assert overall_verdict(["timeout", "1 desync(s)"], late) == "FAIL"   # no lateness explains a desync
    assert overall_verdict(["match ended in error"], late) == "FAIL"
    assert overall_verdict(["error: *: too many events: at most 240 per second (1 refused)"], late) == "INCONCLUSIVE"
    busy = verdict(merge([_report([1.0] * 100, cpu=9.5, wall=10.0)]))
    assert busy["bottleneck"] and "95% of its core" in busy["why"][0]


def test_a_seat_taken_back_resumes_from_the_frame_the_server_names(tmp_path: Path) -> None:
    """The server held a silent seat (a stand-in played it) and gives it back with `resume`: the seat
    starts from the episode's input log, its own inputs counting from the named frame."""
    room, _ = make_room(tmp_path, config={"max_score": 1_000_000, "max_frames": FRAMES})
    seats = wire_seats(room, shared=False)
    play(room, seats, ticks=40)
    log = {p: list(actions) for p, actions in room.log.actions.items()}
    frame = len(log["left"])   # the server names the first frame it has not logged for the seat
    start = {**room.start_payload(room.seats["s0"]), "resume": {"frame": frame, "inputs": log}}
    env = Pong(start["config"])
    config = SessionConfig.for_env(env, fps=60)
    back = WireSeat(start, config, Policy("random", env, ["left"], seed=5),
                    MatchSim(Pong(start["config"]), start["seed"], ("left", "right"), config.desync_interval))
    assert back.mine["left"] == log["left"] and back.frame == frame and back.received["right"] == len(log["right"])
    out = back.tick(1000.0)
    assert back.frame == frame + 1 and len(back.mine["left"]) == frame + 1
    [(player, start, actions)] = codec.decode(out[0][1]).inputs
    assert (player, start) == ("left", 0) and actions[:frame] == log["left"]
    room.relay(room.seats["s0"], PacketEvent(room.id, room.episode, "s1", out[0][1]))   # the room accepts it
    assert len(room.log.actions["left"]) == frame + 1


def test_a_seat_whose_peer_hears_a_later_holder_stops_judging_checksums(tmp_path: Path) -> None:
    """While this participant was silent the server gave its seat to someone else (a peer's packet
    names a later generation of our seat): the match's inputs are no longer ours, so checksums that
    differ from our own re-simulation are not desyncs of ours."""
    room, _ = make_room(tmp_path, config={"max_score": 1_000_000, "max_frames": FRAMES})
    seats = wire_seats(room, shared=False)
    play(room, seats, ticks=30)
    mine = seats["s0"]
    wrong = codec.input_packet(gen=0, peer_gen=0, frame=30, adv=0.0, t=1.0, echo=-1, hold=0, inputs={"right": (30, [])},
                         ack={}, checks=[(10, "not-our-checksum")], gone={})
    mine.receive("s1", wrong, 600.0)
    assert len(mine.desyncs) == 1 and not mine.replaced          # our own seat: a real desync
    taken = codec.input_packet(gen=0, peer_gen=1, frame=31, adv=0.0, t=2.0, echo=-1, hold=0, inputs={"right": (30, [])},
                         ack={}, checks=[(20, "not-our-checksum")], gone={})
    mine.receive("s1", taken, 700.0)
    assert mine.replaced and len(mine.desyncs) == 1


def test_the_generator_runs_on_uvloop_when_installed_and_on_asyncio_without(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.loadtest import event_loop

    async def answer() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    def in_thread(fn: Any) -> Any:   # a thread of its own: another test's browser may own this thread's loop
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(fn).result()

    uvloop = pytest.importorskip("uvloop")
    loop = event_loop.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop) and event_loop.loop_name() == "uvloop"
    finally:
        loop.close()
    assert in_thread(lambda: event_loop.run(answer())).startswith("uvloop")
    monkeypatch.setattr(event_loop, "uvloop", None)   # as where it is not installed
    loop = event_loop.new_event_loop()
    try:
        assert isinstance(loop, asyncio.BaseEventLoop) and event_loop.loop_name() == "asyncio"
    finally:
        loop.close()
    assert in_thread(lambda: event_loop.run(answer())).startswith("asyncio")


def test_the_ticker_sends_a_seat_s_socketio_packets_in_order_one_flush_at_a_time() -> None:
    """Without a match channel a seat's packets go as Socket.IO events; a slow emit must neither
    reorder them nor start a second sender for the same seat while the ticks go on."""
    import time
    from types import SimpleNamespace

    from app.loadtest.wire_participant import WireParticipant
    from app.loadtest.wire_world import Ticker
    from netcode.scheduler import FixedStep

    sent: list[str] = []
    busy = [0, 0]   # senders now, most at once

    class SlowSocketIO:
        async def emit_packet(self, payload: dict[str, Any]) -> None:
            busy[0] += 1
            busy[1] = max(busy)
            await asyncio.sleep(0.04)   # over two frames: ticks meanwhile add packets
            sent.append(payload["data"])
            busy[0] -= 1

    class Seat:
        def __init__(self, person: Any) -> None:
            self.person, self.seat = person, SimpleNamespace(match="m", episode=0)
            self.schedule = FixedStep(1 / 60, 0.0)
            self.stopped, self.channel, self.flushing, self.out, self.ticks = False, None, None, [], 0

        def tick(self, now: float) -> None:
            self.out.append(("s1", str(self.ticks)))
            self.ticks += 1

    async def scenario() -> int:
        person = SimpleNamespace(sio=SlowSocketIO())
        person.flush = lambda playing: WireParticipant.flush(person, playing)   # type: ignore[arg-type]
        seat = Seat(person)
        seat.schedule.next_at = time.monotonic()
        ticker = Ticker(SelfCheck(threads=False))
        ticker.add(seat)   # type: ignore[arg-type]
        running = asyncio.ensure_future(ticker.run())
        await asyncio.sleep(0.3)
        running.cancel()
        seat.stopped = True
        await asyncio.gather(running, return_exceptions=True)
        if seat.flushing is not None:
            await seat.flushing
        return seat.ticks

    with ThreadPoolExecutor(1) as pool:
        ticks = pool.submit(lambda: asyncio.run(scenario())).result()
    assert ticks >= 10 and len(sent) >= 5
    assert sent == [str(i) for i in range(len(sent))] and busy[1] == 1
