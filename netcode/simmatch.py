"""Plays a whole match of N peers over the simulated network and checks convergence.

Each peer has its own env, P2P session and executor; each ticks on its own schedule
(start offset and slight clock drift) on one virtual clock. Inputs come from seeded
`RandomPolicy`s (a player holds an action for a while, as people do). At the end
the confirmed inputs are replayed in plain lockstep on a fresh env: the run has
converged when every peer confirmed the same inputs and every checksum a peer
confirmed equals the lockstep checksum of that frame.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from game.lockstep import Lockstep, checksums
from game.policies import RandomPolicy
from game.rng import Rng
from netcode.config import SessionConfig
from netcode.events import DesyncDetected, Disconnected, WaitRecommendation
from netcode.p2p import P2PSession
from netcode.requests import Request
from netcode.runner import SessionRunner
from netcode.sim import SimNetwork, VirtualClock, get_profile
from netcode.stats import SessionStats

EnvFactory = Callable[[int], Any]   # peer index -> env; -1 for the lockstep reference


@dataclass
class SimReport:
    converged: bool
    reason: str
    frames: int
    peers: int
    profile: str
    seed: int
    rollbacks: int
    rollbacks_per_100_frames: float
    max_rollback_depth: int
    p99_rollback_depth: int
    stalls: int
    desyncs: int
    bad_packets: int
    checked_frames: int
    disconnects: int
    virtual_seconds: float
    desync_events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Peer:
    index: int
    addr: str
    players: tuple[str, ...]
    session: P2PSession
    runner: SessionRunner
    tick_ms: float
    next_tick: float
    alive: bool = True
    skip: int = 0
    log: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    checksums: dict[int, str] = field(default_factory=dict)


def run_sim_match(
    make_env: EnvFactory,
    *,
    peers: int = 2,
    profile: str = "lan",
    frames: int = 600,
    seed: int = 0,
    settings: dict[str, Any] | None = None,
    drop: dict[int, int] | None = None,
    on_requests: Callable[[int, P2PSession, list[Request]], None] | None = None,
) -> SimReport:
    """Play `frames` frames with `peers` peers; `drop` maps a peer index to the frame it vanishes at."""
    reference = make_env(-1)
    players = tuple(reference.players)
    if not 2 <= peers <= len(players):
        raise ValueError(f"this game has {len(players)} players, so peers must be between 2 and {len(players)}, got {peers}")
    config = SessionConfig.for_env(reference, **(settings or {}))
    clock = VirtualClock()
    network = SimNetwork(get_profile(profile), seed, clock)
    rng = Rng(seed ^ 0x5EED)
    owners = {i: players[i::peers] for i in range(peers)}
    inputs = {p: RandomPolicy() for p in players}
    for k, player in enumerate(players):
        inputs[player].setup(player, config.action_spaces[player], seed * 7919 + k)
    sim_peers = []
    for i in range(peers):
        env = make_env(i)
        env.reset(seed)
        addr = f"peer{i}"
        session = P2PSession(
            config, owners[i], {f"peer{j}": owners[j] for j in range(peers) if j != i},
            network.endpoint(addr), clock, keep_confirmed_log=True,
        )
        hook = (lambda requests, i=i, s=session: on_requests(i, s, requests)) if on_requests else None
        runner = SessionRunner(session, env, capacity=config.max_prediction + 4, on_requests=hook)
        tick_ms = config.frame_ms * (1 + 0.004 * (2 * rng.random() - 1))
        sim_peers.append(_Peer(i, addr, owners[i], session, runner, tick_ms, next_tick=3 * config.frame_ms * rng.random()))
    drop = drop or {}
    desync_events: list[dict[str, Any]] = []
    disconnects = 0
    limit_ms = frames * config.frame_ms * 20 + 20_000

    def finished() -> bool:
        live = [p for p in sim_peers if p.alive]
        return all(p.session.current_frame >= frames and p.session.confirmed_frame >= frames - 1 for p in live)

    while not finished():
        peer = min((p for p in sim_peers if p.alive), key=lambda p: (p.next_tick, p.index))
        if peer.next_tick > limit_ms:
            break
        clock.advance_to(peer.next_tick)
        peer.next_tick += peer.tick_ms
        if peer.index in drop and peer.session.current_frame >= drop[peer.index]:
            network.mute(peer.addr)
            peer.alive = False
            continue
        peer.session.poll()
        if peer.skip:
            peer.skip -= 1
        else:
            peer.runner.tick({p: inputs[p].act(None) for p in peer.players})
        for event in peer.session.events():
            if isinstance(event, WaitRecommendation):
                peer.skip += event.skip_frames
            elif isinstance(event, DesyncDetected):
                desync_events.append({"reporter": peer.addr, **asdict(event)})
            elif isinstance(event, Disconnected):
                disconnects += 1
        if peer.session.current_frame % 32 == 0:
            _collect(peer)

    for peer in sim_peers:
        _collect(peer)

    return _report(
        sim_peers, reference, seed, config, frames, profile, desync_events, disconnects, clock.now_ms,
        timed_out=not finished(),
    )


def _collect(peer: _Peer) -> None:
    """Keep the peer's confirmed inputs and checksums before the session forgets them."""
    peer.checksums.update(peer.session.confirmed_checksums())
    peer.log += peer.session.drain_confirmed()


def _report(
    sim_peers: list[_Peer], reference: Any, seed: int, config: SessionConfig, frames: int, profile: str,
    desync_events: list[dict[str, Any]], disconnects: int, now_ms: float, timed_out: bool,
) -> SimReport:
    live = [p for p in sim_peers if p.alive]
    totals = SessionStats()
    for peer in sim_peers:
        stats = peer.session.stats
        totals.rollbacks += stats.rollbacks
        totals.stalls += stats.stalls
        totals.desyncs += stats.desyncs
        totals.bad_packets += stats.bad_packets
        for depth, count in stats.depth_counts.items():
            totals.depth_counts[depth] = totals.depth_counts.get(depth, 0) + count
    reason, checked = _check_convergence(live, reference, seed, config, frames, timed_out)
    if not reason and desync_events:
        reason = f"{len(desync_events)} desync events"
    return SimReport(
        converged=not reason, reason=reason or "ok", frames=frames, peers=len(sim_peers), profile=profile, seed=seed,
        rollbacks=totals.rollbacks,
        rollbacks_per_100_frames=round(100 * totals.rollbacks / max(1, frames * len(sim_peers)), 2),
        max_rollback_depth=max(totals.depth_counts, default=0), p99_rollback_depth=totals.depth_percentile(0.99),
        stalls=totals.stalls, desyncs=totals.desyncs, bad_packets=totals.bad_packets, checked_frames=checked,
        disconnects=disconnects, virtual_seconds=round(now_ms / 1000, 3), desync_events=desync_events,
    )


def _check_convergence(
    live: list[_Peer], reference: Any, seed: int, config: SessionConfig, frames: int, timed_out: bool,
) -> tuple[str, int]:
    """A reason the run did not converge ("" if it did) and how many checksums were compared."""
    if timed_out:
        return f"timed out before every peer confirmed {frames} frames", 0
    short = [p.addr for p in live if len(p.log) < frames]
    if short:
        return f"{short} confirmed fewer than {frames} frames", 0
    truth_inputs = [inputs for _, inputs in live[0].log[:frames]]
    for peer in live[1:]:
        if [inputs for _, inputs in peer.log[:frames]] != truth_inputs:
            return f"{peer.addr} confirmed different inputs than {live[0].addr}", 0
    lockstep = Lockstep(reference, seed, config.players, truth_inputs)
    truth = checksums(lockstep, at=lambda frame: frame < frames and config.is_check_frame(frame))
    checked = 0
    for peer in live:
        for frame, checksum in peer.checksums.items():
            if frame in truth:
                checked += 1
                if checksum != truth[frame]:
                    return f"{peer.addr} confirmed checksum {checksum} at frame {frame}, lockstep gives {truth[frame]}", checked
    if truth and checked < len(live):
        return "no confirmed checksums were compared", checked
    return "", checked
