"""One seat of a relayed match at the protocol level, for the wire-level load generator (no I/O).

A `WireSeat` plays an episode the way the server sees a browser play it, without running the
rollback netcode: every tick it adds its players' next inputs (seeded synthetic ones, from the
participant's `Policy`), and builds the one input packet a session would send then (its
unacknowledged inputs, acks of what it received, the checksums of recent check frames, time
stamps for the peers' ping); it reads its peers' packets for their inputs, acks and time stamps.
Like a session it runs at most `max_prediction` frames past the inputs it has of its peers.

The server ends an episode only when every seat's `episode_done` names the frame and the final
checksum of its own re-simulation, so a wire seat needs the real game state at check frames and
at the end: `MatchSim` steps one lockstep re-simulation (game.lockstep) of the match over the
inputs known in this process (both seats of a match share it when they live in the same process;
`SimRegistry`). The simulation takes only inputs the server has logged: a peer's as the server
relays them, a seat's own once a peer acknowledges them (they came through the relay), and the
log a taken-back seat resumes from. A seat's own inputs the server never logged (sent while the
server gave the seat to a stand-in) must not enter it: the referee re-simulates the server's log.
A seat reports a checksum only for frames those inputs cover, so what it sends is what a real
seat could know.

The generator handles tens of thousands of packets a second per core, so a seat writes its packets
straight as protocol-3 text (`lean_packet`, the same characters netcode.codec.input_packet writes)
and reads its peers' by position with json's C scanner: the server validated them (netcode.codec)
before it relayed them.
"""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from game.lockstep import Lockstep
from netcode import codec
from netcode.config import SessionConfig

_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)
_SCAN = json.JSONDecoder().scan_once   # type: ignore[attr-defined]   # the C scanner: one JSON value at a position
CHECKS_SENT = 4          # latest check-frame checksums repeated in every packet (as netcode.p2p sends)
KEEPALIVE_S = 0.1        # a stalled or finished seat still sends a packet this often


class MatchSim:
    """One episode re-simulated over the inputs known in this process; `checksums` of check frames
    and of the end frame (`ended_at`), as the server's referee computes them."""

    def __init__(self, env: Any, seed: int, players: Sequence[str], check_every: int) -> None:
        self.players = tuple(players)
        self.known: dict[str, list[Any]] = {p: [] for p in self.players}   # each player's actions from frame 0
        self.frames: list[list[Any]] = []
        self.sim = Lockstep(env, seed, self.players, self.frames, length=0)
        self.check_every = check_every
        self.checksums: dict[int, str] = {0: self.sim.checksum()} if check_every else {}
        self.check_frames: list[int] = list(self.checksums)   # in order; the end frame only if a check frame
        self.ended_at: int | None = None
        self.users = 0
        self._texts: dict[int, str] = {}   # checksums as JSON text, encoded once
        self._recent: tuple[int, list[tuple[int, str]]] = (-1, [])   # recent_checks' last answer, by end index
        self._new = False   # inputs arrived since the last run

    def know(self, player: str, start: int, actions: Sequence[Any]) -> None:
        """Inputs of `player` from frame `start` (a resend overlaps what is known; a gap is ignored)."""
        have = self.known[player]
        if start <= len(have) < start + len(actions):
            have.extend(actions[len(have) - start:])
            self._new = True

    def run(self) -> None:
        """Step every frame whose inputs are all known (never past the game's end)."""
        if not self._new:
            return
        self._new = False
        known = [self.known[p] for p in self.players]
        ready = min(map(len, known))   # `know` is not called while this runs
        while self.ended_at is None and self.sim.frame < ready:
            f = self.sim.frame
            self.frames.append([actions[f] for actions in known])
            self.sim.length = len(self.frames)
            result = self.sim.step()
            frame = self.sim.frame
            if result["terminated"] or result["truncated"]:
                self.ended_at = frame
            is_check = bool(self.check_every) and frame % self.check_every == 0
            if is_check or frame == self.ended_at:
                self.checksums[frame] = self.sim.checksum()
            if is_check:
                self.check_frames.append(frame)

    def recent_checks(self, upto: int, count: int = CHECKS_SENT) -> list[tuple[int, str]]:
        """The last `count` (check frame, checksum as JSON text) pairs at or before frame `upto`."""
        end = bisect.bisect_right(self.check_frames, upto)
        if self._recent[0] == end and count == CHECKS_SENT:
            return self._recent[1]   # check_frames only grows, so the same end index is the same answer
        texts = self._texts
        recent = [(f, texts.get(f) or texts.setdefault(f, _json_text(self.checksums[f])))
                  for f in self.check_frames[max(0, end - count):end]]
        if count == CHECKS_SENT:
            self._recent = (end, recent)
        return recent


class SimRegistry:
    """The process's MatchSims, one per (match, episode), shared by the seats that play it here."""

    def __init__(self) -> None:
        self._sims: dict[tuple[str, int], MatchSim] = {}

    def take(self, key: tuple[str, int], make: Any) -> MatchSim:
        sim = self._sims.get(key)
        if sim is None:
            sim = self._sims[key] = make()
        sim.users += 1
        return sim

    def give_back(self, key: tuple[str, int]) -> None:
        sim = self._sims.get(key)
        if sim is not None:
            sim.users -= 1
            if sim.users <= 0:
                del self._sims[key]

    def __len__(self) -> int:
        return len(self._sims)


@dataclass
class _Peer:
    addr: str
    players: tuple[str, ...]
    gen: int = -1                 # the holder generation heard from it (-1: none yet)
    frame: int = 0                # its current frame, as its last packet said
    last_t: float = -1.0          # its last time stamp (ms) and when it arrived (our ms)
    last_t_at: float = 0.0
    acked: dict[str, int] = field(default_factory=dict)   # our player -> last frame it has


class WireSeat:
    """The local seat of one episode: `tick(now_ms)` -> packets to send [(to, data)], `receive`
    a peer's packet, `done` the `episode_done` payload once the end is confirmed here."""

    def __init__(self, start: Mapping[str, Any], config: SessionConfig, policy: Any, sim: MatchSim) -> None:
        self.match: str = start["match"]
        self.episode: int = start["episode"]
        self.seat: str = start["seat"]
        self.gen: int = int(start.get("gen", 0))
        self.players = tuple(start["players"])
        self.peers = {addr: _Peer(addr, tuple(ps)) for addr, ps in (start.get("peers") or {}).items()
                      if addr != self.seat}
        self.config = config
        self.policy = policy
        self.sim = sim
        self.frame = 0                         # ticks advanced (the session's current frame)
        self.mine: dict[str, list[Any]] = {p: [] for p in self.players}
        self.received: dict[str, int] = {p: 0 for peer in self.peers.values() for p in peer.players}
        self._through = 0 if self.received else 1 << 60   # min(received): kept by _received_through
        resume = start.get("resume")
        if isinstance(resume, dict):
            self._resume(int(resume["frame"]), resume["inputs"])
        else:
            for p in self.players:
                self.mine[p].extend([config.default_actions[p]] * config.delay_of(p))
                if not self.peers:
                    self._know_mine(p, len(self.mine[p]))
        self.done: dict[str, Any] | None = None
        self.stalls = 0
        self.desyncs: list[dict[str, Any]] = []
        self.rtt_ms: float | None = None
        self.packets_sent = self.packets_received = 0
        self.replaced = False                  # a peer heard a later holder of this seat (the server gave it away)
        self.peer_replaced = False             # a peer's seat changed holder (a stand-in or an AI took it)
        self._last_sent = float("-inf")
        self._remote_checks: dict[int, str] = {}
        self._ids = {p: _json_text(p) for p in (*self.players, *self.received)}

    def _resume(self, frame: int, log: Mapping[str, Sequence[Any]]) -> None:
        """Take the seat back at `frame` (the server's rejoin): the episode's input log is what was
        played so far; this seat's own inputs count from `frame` on."""
        for p, actions in log.items():
            if p in self.mine:
                self.mine[p] = list(actions[:frame])
            elif p in self.received:
                self.received[p] = len(actions)
                self._received_through()
            self.sim.know(p, 0, list(actions[:frame] if p in self.mine else actions))
        self.frame = max(0, min(len(a) - self.config.delay_of(p) for p, a in self.mine.items()))

    # ------------------------------------------------------------ ticks

    def tick(self, now_ms: float) -> list[tuple[str, str]]:
        """One frame: the next inputs (unless too far past the peers' inputs, or the end is known),
        then a packet to every peer; a stalled or finished seat sends one every KEEPALIVE_S."""
        advanced = False
        if self.done is None:
            if self.frame - self._peers_through() < self.config.max_prediction:
                observations: dict[str, Any] = {}
                for p, action in self.policy.actions(observations, self.frame).items():
                    self.mine[p].append(action)
                    if not self.peers:
                        self._know_mine(p, len(self.mine[p]))
                self.frame += 1
                advanced = True
            else:
                self.stalls += 1
            self.sim.run()
            self._check_end()
        if not advanced and now_ms - self._last_sent < KEEPALIVE_S * 1000:
            return []
        self._last_sent = now_ms
        out = [(peer.addr, self._packet(peer, now_ms)) for peer in self.peers.values()]
        self.packets_sent += len(out)
        return out

    def _know_mine(self, player: str, upto: int) -> None:
        """Own inputs of `player` before frame `upto` are the match's: a peer acknowledged them (or no
        peer could, there being none). Before that the server may not have logged them."""
        upto = min(upto, len(self.mine[player]))
        have = len(self.sim.known[player])
        if upto > have:
            self.sim.know(player, have, self.mine[player][have:upto])

    def _peers_through(self) -> int:
        """Frames (from 0) for which every peer's inputs have arrived."""
        return self._through

    def _received_through(self) -> None:
        received = self.received
        self._through = min(received.values()) if received else 1 << 60

    def _confirmed(self) -> int:
        """Frames (from 0) with every player's input known to this seat."""
        confirmed = self._peers_through()
        for actions in self.mine.values():
            if len(actions) < confirmed:
                confirmed = len(actions)
        return confirmed

    def _check_end(self) -> None:
        end = self.sim.ended_at
        if end is not None and self._confirmed() >= end and not self.replaced:
            self.done = {"match": self.match, "episode": self.episode, "frame": end,
                         "checksum": self.sim.checksums[end], "predicted": {}}

    def _packet(self, peer: _Peer, now_ms: float) -> str:
        """The input packet to `peer`, formatted straight into the protocol-3 text (see `lean_packet`)."""
        frame, ids, mine, acked = self.frame, self._ids, self.mine, peer.acked
        inputs = []
        for p in self.players:
            start = acked.get(p, -1) + 1
            inputs.append((ids[p], frame - start, mine[p][start:start + codec.MAX_INPUTS_PER_PLAYER]))
        received = self.received
        ack = ",".join([f"{ids[p]},{frame - received[p] + 1}" for p in peer.players])
        # Time stamps to 0.1 ms, as a browser's coarsened performance.now() gives them (shorter to write and parse).
        hold = round(now_ms - peer.last_t_at, 1) if peer.last_t >= 0 else 0
        return lean_packet(self.gen, peer.gen, frame, float(frame - peer.frame), round(now_ms, 1), peer.last_t, hold,
                           inputs, ack, self.sim.recent_checks(self._confirmed()))

    # ------------------------------------------------------------ packets in

    def receive(self, sender: str, data: str, now_ms: float) -> None:
        """A peer's packet, as the server relayed it (after validating it with netcode.codec; so it is
        only parsed here, by position). Raises ValueError when it is not an input packet."""
        peer = self.peers.get(sender)
        try:
            (version, kind, gen, peer_gen, frame, _adv, t, echo, hold, inputs, ack, checks,
             _gone), _ = _SCAN(data, 0)
        except (StopIteration, ValueError, TypeError) as error:
            raise ValueError(f"not an input packet: {error}: {data[:60]!r}") from None
        if version != codec.PROTOCOL_VERSION or kind != "i":
            raise ValueError(f"not an input packet: {data[:60]!r}")
        if peer is None:
            return
        self.packets_received += 1
        if gen > peer.gen:
            # A later holder of the peer's seat (gen 0 is its first): the simulation here may hold the old
            # holder's inputs for frames its successor played (a match sim is shared by both seats of this
            # process), so its checksums no longer judge the peer's.
            self.peer_replaced = self.peer_replaced or gen > 0
            peer.gen, peer.last_t, peer.frame = gen, -1.0, 0
        elif gen < peer.gen:
            return   # a previous holder's packet, still in flight
        received = self.received
        for i in range(0, len(inputs), 3):
            p = inputs[i]
            if p in received:
                start, have = frame - inputs[i + 1], received[p]
                if start <= have:
                    actions = _expand(inputs[i + 2])
                    if have < start + len(actions):
                        self.sim.know(p, start, actions)
                        received[p] = start + len(actions)
                        self._received_through()
        mine = self.mine
        for i in range(0, len(ack), 2):
            p = ack[i]
            if p in mine:
                acked = max(peer.acked.get(p, -1), min(frame - ack[i + 1], len(mine[p]) - 1))
                peer.acked[p] = acked
                if peer_gen == self.gen:   # acks of our inputs, not of a later holder's
                    self._know_mine(p, acked + 1)
        peer.frame = frame
        if t > peer.last_t:
            peer.last_t, peer.last_t_at = t, now_ms
        if peer_gen == self.gen and echo >= 0:
            self.rtt_ms = max(0.0, now_ms - echo - hold)
        if peer_gen > self.gen:
            # Someone else holds this seat now (the server gave it to a stand-in or an AI while this
            # participant was silent): its inputs, not ours, are the match's from then on, so checksums
            # compared here would only measure that. The server resumes us, or ends the match for us.
            self.replaced = True
        if self.replaced or self.peer_replaced:
            return
        ours = self.sim.checksums
        for i in range(0, len(checks), 2):
            checked, theirs = frame - checks[i], checks[i + 1]
            mine_then = ours.get(checked)
            if mine_then is None:
                self._remote_checks[checked] = theirs   # compared once this process re-simulates that far
            elif theirs != mine_then:
                self._desync(checked, mine_then, theirs, sender)
        if self._remote_checks:
            self._compare_checks(sender)

    def _compare_checks(self, sender: str) -> None:
        ours = self.sim.checksums
        for frame in [f for f in self._remote_checks if f in ours]:
            theirs = self._remote_checks.pop(frame)
            if theirs != ours[frame]:
                self._desync(frame, ours[frame], theirs, sender)
        if len(self._remote_checks) > 64:
            for frame in sorted(self._remote_checks)[:-64]:
                del self._remote_checks[frame]

    def _desync(self, frame: int, ours: str, theirs: str, sender: str) -> None:
        self.desyncs.append({"match": self.match, "episode": self.episode, "frame": frame,
                             "local": ours, "remote": theirs, "peer": sender})


def _expand(runs: list[Any]) -> list[Any]:
    """[action, count, ...] -> the actions (as netcode.codec decodes an input packet's runs)."""
    if len(runs) == 2 and runs[1] == 1:
        return [runs[0]]
    actions: list[Any] = []
    for i in range(0, len(runs), 2):
        actions += [runs[i]] * runs[i + 1]
    return actions


def _json_text(value: Any) -> str:
    return _ENCODER.encode(value)


def _runs_text(actions: Sequence[Any]) -> str:
    """The run-length form of `actions` as netcode.codec writes it, as JSON text without the brackets:
    equal ints or strings in a row merge into one run, other actions repeat."""
    if len(actions) == 1 and type(actions[0]) is int:   # the usual resend: one unacknowledged input
        return f"{actions[0]},1"
    parts: list[str] = []
    last: Any = None
    last_type: type = type(None)
    count = 0
    for action in actions:
        kind = type(action)
        if kind is last_type and (kind is int or kind is str) and action == last:
            count += 1
            continue
        if count:
            parts.append(f"{_json_text(last) if last_type is not int else last},{count}")
        last, last_type, count = action, kind, 1
    if count:
        parts.append(f"{_json_text(last) if last_type is not int else last},{count}")
    return ",".join(parts)


def lean_packet(gen: int, peer_gen: int, frame: int, adv: float, t: float, echo: float, hold: float,
                inputs: Sequence[tuple[str, int, Sequence[Any]]], ack: str, checks: Sequence[tuple[int, str]]) -> str:
    """A protocol-3 input packet (netcode.codec.input_packet) formatted as text in one go: the same
    characters codec's JSON encoder writes (tests/test_loadtest_wire_unit.py compares them), at a
    fraction of its cost. `inputs` [(player as JSON, frame - start, actions)]; `ack` the ack list's JSON
    text without brackets; `checks` [(frame, checksum as JSON)]."""
    wire_inputs = ",".join([f"{p},{delta},[{_runs_text(actions)}]" for p, delta, actions in inputs])
    wire_checks = ",".join([f"{frame - f},{checksum}" for f, checksum in checks])
    return (f'[3,"i",{gen},{peer_gen},{frame},{adv!r},{t!r},{echo!r},{hold!r},'
            f"[{wire_inputs}],[{ack}],[{wire_checks}],[]]")

