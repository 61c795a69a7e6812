"""No survivor ever freezes: a seat changes holder mid-episode (an AI or a stand-in takes a dropped seat,
a participant takes it back) and the partner who stayed keeps playing.

A small relay on a virtual clock stands in for the server: it logs every input it forwards (the
canonical input log), drops packets of a holder the seat no longer has, and starts the new holder
with the log as `preload`, as the match room does. Every holder reads its own clock with its own
offset (a page's `performance.now()` starts near 0 at load, the server's monotonic clock is large):
ping and time sync must not mix them up.
"""
from __future__ import annotations

import heapq
from typing import Any

from app.live.input_log import InputLog
from game.games.pong import Pong
from game.rng import Rng
from netcode import codec
from netcode.client import MatchClient
from netcode.p2p import P2PSession
from netcode.scheduler import FixedStep
from netcode.sim import VirtualClock
from netcode.timesync import MAX_WAIT_FRAMES, TimeSync
from netcode.transport import MemoryHub
from tests.netcode_fixtures import tally_config

FPS = 60
FRAME_MS = 1000 / FPS
MAX_GAP_MS = 500


class Holder:
    """Whoever plays a seat now: a MatchClient on its own clock and fixed-step schedule."""

    def __init__(self, start: dict[str, Any], clock: VirtualClock, offset: float,
                 preload: dict[str, list[Any]] | None, rng: Rng) -> None:
        self.offset = offset
        self.client = MatchClient(start, Pong, lambda: clock.now_ms + offset, preload)
        self.schedule = FixedStep(FRAME_MS, clock.now_ms + offset)
        self.rng = rng
        self.action = 0

    def run_due(self, now_ms: float, send: Any) -> None:
        while self.client.catching_up:   # a holder that takes over replays the log at full speed
            self._tick(send)
        for _ in range(self.schedule.due(now_ms + self.offset)):
            self._tick(send)
            self.schedule.ticked(self.client.take_skip_frames())

    def _tick(self, send: Any) -> None:
        if self.rng.random() < 0.05:
            self.action = self.rng.randbelow(3)
        self.client.tick({} if self.client.done else {p: self.action for p in self.client.players})
        for packet in self.client.outbox():
            send(self, packet)


class Relay:
    """Two seats, s0 (the survivor) and s1 (taken over), and the packets in flight between them."""

    def __init__(self, seed: int) -> None:
        self.rng = Rng(seed)
        self.clock = VirtualClock()
        self.base = {"match": "m", "episode": 0, "seed": seed, "fps": FPS,
                     "config": {"max_score": 99, "max_frames": 1500}, "netcode": {"input_delay": 2}}
        self.players = {"s0": ["left"], "s1": ["right"]}
        self.log = InputLog(["left", "right"])
        self.generation = {"s0": 0, "s1": 0}
        self.holders = {seat: self._holder(seat, None) for seat in self.players}
        self.in_flight: list[tuple[float, int, Holder, str, str]] = []
        self.seq = 0

    def _holder(self, seat: str, preload: dict[str, list[Any]] | None) -> Holder:
        other = "s1" if seat == "s0" else "s0"
        start = {**self.base, "seat": seat, "players": self.players[seat], "peers": {other: self.players[other]},
                 "gen": self.generation[seat]}
        # A fresh page's clock starts near 0; the server's runs since boot; an old page's somewhere between.
        offset = self.rng.choice([-self.clock.now_ms + 50 * self.rng.random(), 1e6 + 1e8 * self.rng.random(),
                                  1e5 * self.rng.random()])
        return Holder(start, self.clock, offset, preload, Rng(self.rng.randbelow(1 << 30)))

    def send(self, sender: Holder, packet: dict[str, Any]) -> None:
        seat = next(s for s, h in self.holders.items() if h is sender)
        for player, start, actions in codec.decode(packet["data"]).inputs:
            self.log.add(player, start, actions)
        delay = 15 + 10 * self.rng.random()
        heapq.heappush(self.in_flight, (self.clock.now_ms + delay, self.seq, sender, seat, packet["data"]))
        self.seq += 1

    def deliver_due(self) -> None:
        while self.in_flight and self.in_flight[0][0] <= self.clock.now_ms:
            _, _, sender, seat, data = heapq.heappop(self.in_flight)
            if self.holders[seat] is not sender:
                continue   # the seat has another holder now: the server drops what the old one sent
            other = "s1" if seat == "s0" else "s0"
            self.holders[other].client.receive(seat, data)

    def take_over(self, seat: str) -> None:
        self.generation[seat] += 1
        self.holders[seat] = self._holder(seat, self.log.snapshot())


def survivor_largest_gap_ms(seed: int) -> tuple[float, int]:
    """Play one episode with 1 to 3 takeovers of s1 at random frames; the survivor's largest gap
    between two frames (virtual ms) and the frame the episode ended at."""
    relay = Relay(seed)
    takeovers = sorted(relay.rng.randbelow(1300) + 30 for _ in range(1 + relay.rng.randbelow(3)))
    survivor = relay.holders["s0"]
    last_frame, last_at, gap = 0, 0.0, 0.0
    while survivor.client.done is None and relay.clock.now_ms < 120_000:
        relay.clock.advance_to(relay.clock.now_ms + 1.0)
        relay.deliver_due()
        if takeovers and relay.holders["s1"].client.session.current_frame >= takeovers[0]:
            takeovers.pop(0)
            relay.take_over("s1")
        for holder in list(relay.holders.values()):
            holder.run_due(relay.clock.now_ms, relay.send)
        frame = survivor.client.session.current_frame
        if frame != last_frame:
            if last_frame > 0:
                gap = max(gap, relay.clock.now_ms - last_at)
            last_frame, last_at = frame, relay.clock.now_ms
    assert survivor.client.done is not None, f"seed {seed}: the survivor never finished (frame {last_frame})"
    return gap, survivor.client.done["frame"]


def test_a_survivor_never_freezes_when_its_partner_seat_changes_holder() -> None:
    gaps = {seed: survivor_largest_gap_ms(seed) for seed in range(12)}
    worst = max(gap for gap, _ in gaps.values())
    assert worst < MAX_GAP_MS, f"survivor's largest gap between frames: {gaps}"
    assert all(frame == 1500 for _, frame in gaps.values())


def test_a_new_holder_resets_ping_and_time_sync_and_stale_echoes_are_ignored() -> None:
    """Unit level: what the receiver keeps of a remote seat when its holder changes."""
    now = [1000.0]
    hub = MemoryHub()
    config = tally_config(2)
    survivor = P2PSession(config, ["p0"], {"b": ["p1"]}, hub.endpoint("a"), lambda: now[0])

    def packet(gen: int, peer_gen: int, frame: int, t: float, echo: float, adv: float) -> str:
        return codec.input_packet(gen=gen, peer_gen=peer_gen, frame=frame, adv=adv, t=t, echo=echo, hold=0, inputs={},
                                  ack={}, checks=[], gone={})

    survivor.handle_packet("b", packet(0, 0, 0, t=5e8, echo=990.0, adv=0))
    remote = survivor.remotes["b"]
    assert remote.gen == 0 and remote.ping_ms == 10.0 and remote.last_t == 5e8
    # A new holder whose clock starts near 0, still echoing what it never sent: the old holder's
    # clock and our stale echo are forgotten, not mixed with the new ones.
    survivor.handle_packet("b", packet(1, -1, 0, t=3.0, echo=-1, adv=-5000))
    assert remote.gen == 1 and remote.ping_ms is None and remote.last_t == 3.0
    assert list(remote.timesync.remote) == []
    survivor.handle_packet("b", packet(0, 0, 0, t=6e8, echo=999.0, adv=-5000))   # the old holder, in flight
    assert remote.last_t == 3.0 and remote.ping_ms is None
    survivor.handle_packet("b", packet(1, 0, 0, t=4.0, echo=995.0, adv=0))
    assert remote.ping_ms == 5.0
    sync = TimeSync()
    sync.update(5000, -5000)
    assert sync.wait_frames() == MAX_WAIT_FRAMES
