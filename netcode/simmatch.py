"""Plays a whole match of N peers over the simulated network and checks convergence.

Each peer has its own env, P2P session and executor; each ticks on its own schedule
(start offset and slight clock drift) on one virtual clock. Inputs come from seeded
`RandomPolicy`s (a player holds an action for a while, as people do). The match is
played episode by episode, as served matches are: an episode ends where the game says
(terminated or truncated; no peer steps past it) and the next starts on fresh envs
reset with seed + episode, until `frames` frames have been played. After each episode
the confirmed inputs are replayed in plain lockstep on a fresh env: the run has converged
when every peer confirmed the same inputs and every checksum a peer confirmed equals the
lockstep checksum of that frame. One peer (a 1-player game) is fine.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from game.lockstep import Lockstep, checksums
from game.policies import RandomPolicy
from game.rng import Rng
from netcode.config import SessionConfig
from netcode.episode import EpisodeRunner
from netcode.events import DesyncDetected, Disconnected, WaitRecommendation
from netcode.p2p import P2PSession
from netcode.requests import Request
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
    episodes: int = 1
    desync_events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Peer:
    index: int
    addr: str
    players: tuple[str, ...]
    session: P2PSession
    runner: EpisodeRunner
    tick_ms: float
    next_tick: float
    alive: bool = True
    skip: int = 0
    log: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    checksums: dict[int, str] = field(default_factory=dict)


@dataclass
class _Match:
    """What lasts across the episodes of one simulated match."""

    make_env: EnvFactory
    config: SessionConfig
    owners: dict[int, tuple[str, ...]]
    network: SimNetwork
    clock: VirtualClock
    rng: Rng
    policies: dict[str, RandomPolicy]
    drop: dict[int, int]
    on_requests: Callable[[int, P2PSession, list[Request]], None] | None
    alive: dict[int, bool]
    stats: SessionStats = field(default_factory=SessionStats)
    desync_events: list[dict[str, Any]] = field(default_factory=list)
    disconnects: int = 0
    checked: int = 0


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
    if not 1 <= peers <= len(players):
        raise ValueError(f"this game has {len(players)} player(s), so peers must be between 1 and {len(players)}, "
                         f"got {peers}")
    config = SessionConfig.for_env(reference, **(settings or {}))
    clock = VirtualClock()
    policies = {p: RandomPolicy() for p in players}
    for k, player in enumerate(players):
        policies[player].setup(player, config.action_spaces[player], seed * 7919 + k)
    match = _Match(make_env, config, {i: players[i::peers] for i in range(peers)},
                   SimNetwork(get_profile(profile), seed, clock), clock, Rng(seed ^ 0x5EED), policies, drop or {},
                   on_requests, {i: True for i in range(peers)})
    played, episode, reason = 0, 0, ""
    while played < frames and not reason:
        length, reason = _play_episode(match, episode, seed + episode, played, frames - played)
        played += length
        episode += 1
    if not reason and match.desync_events:
        reason = f"{len(match.desync_events)} desync events"
    totals = match.stats
    return SimReport(
        converged=not reason, reason=reason or "ok", frames=played, peers=peers, profile=profile, seed=seed,
        rollbacks=totals.rollbacks,
        rollbacks_per_100_frames=round(100 * totals.rollbacks / max(1, played * peers), 2),
        max_rollback_depth=max(totals.depth_counts, default=0), p99_rollback_depth=totals.depth_percentile(0.99),
        stalls=totals.stalls, desyncs=totals.desyncs, bad_packets=totals.bad_packets, checked_frames=match.checked,
        disconnects=match.disconnects, virtual_seconds=round(clock.now_ms / 1000, 3), episodes=episode,
        desync_events=match.desync_events,
    )


def _play_episode(match: _Match, episode: int, seed: int, offset: int, limit: int) -> tuple[int, str]:
    """Play one episode of at most `limit` frames; (its length, a reason it did not converge or "")."""
    config, clock, peers = match.config, match.clock, len(match.owners)
    # Each episode's sessions get addresses of their own: packets of an earlier episode still
    # in flight must not reach them (served matches tag packets with the episode likewise).
    suffix = f"/{episode}" if episode else ""
    sim_peers = []
    for i, owned in match.owners.items():
        env = match.make_env(i)
        observations = env.reset(seed)
        addr = f"peer{i}{suffix}"
        session = P2PSession(
            config, owned, {f"peer{j}{suffix}": match.owners[j] for j in range(peers) if j != i},
            match.network.endpoint(addr), clock, keep_confirmed_log=True,
        )
        hook = (lambda requests, i=i, s=session, f=match.on_requests: f(i, s, requests)) if match.on_requests \
            else None
        runner = EpisodeRunner(session, env, observations, capacity=config.max_prediction + 4, on_requests=hook)
        tick_ms = config.frame_ms * (1 + 0.004 * (2 * match.rng.random() - 1))
        sim_peers.append(_Peer(i, addr, owned, session, runner, tick_ms, clock.now_ms + 3 * config.frame_ms *
                               match.rng.random(), alive=match.alive[i]))
    limit_ms = clock.now_ms + limit * config.frame_ms * 20 + 20_000

    def finished() -> bool:
        return all(p.runner.done or (p.session.current_frame >= limit and p.session.confirmed_frame >= limit - 1)
                   for p in sim_peers if p.alive)

    while not finished():
        peer = min((p for p in sim_peers if p.alive), key=lambda p: (p.next_tick, p.index))
        if peer.next_tick > limit_ms:
            break
        clock.advance_to(peer.next_tick)
        peer.next_tick += peer.tick_ms
        if peer.index in match.drop and offset + peer.session.current_frame >= match.drop[peer.index]:
            match.network.mute(peer.addr)
            peer.alive = match.alive[peer.index] = False
            continue
        if peer.skip:
            peer.skip -= 1
            peer.session.poll()
        else:
            peer.runner.tick({p: match.policies[p].act(None) for p in peer.players})
        for event in peer.session.events():
            if isinstance(event, WaitRecommendation):
                peer.skip += event.skip_frames
            elif isinstance(event, DesyncDetected):
                match.desync_events.append({"reporter": peer.addr, **asdict(event)})
            elif isinstance(event, Disconnected):
                match.disconnects += 1
        if peer.session.current_frame % 32 == 0:
            _collect(peer)
    for peer in sim_peers:
        _collect(peer)
        _add_stats(match.stats, peer.session.stats)
    live = [p for p in sim_peers if p.alive]
    if not live:
        return limit, "every peer dropped"
    ends = {p.session.end_frame for p in live}
    length = min(limit, live[0].session.end_frame or limit)
    if not finished():
        return length, f"timed out before every peer confirmed {length} frames"
    if len(ends) > 1:
        return length, f"the peers saw the episode end at different frames {sorted(map(str, ends))}"
    return length, _check_convergence(match, live, seed, length)


def _add_stats(totals: SessionStats, stats: SessionStats) -> None:
    totals.rollbacks += stats.rollbacks
    totals.stalls += stats.stalls
    totals.desyncs += stats.desyncs
    totals.bad_packets += stats.bad_packets
    for depth, count in stats.depth_counts.items():
        totals.depth_counts[depth] = totals.depth_counts.get(depth, 0) + count


def _collect(peer: _Peer) -> None:
    """Keep the peer's confirmed inputs and checksums before the session forgets them."""
    peer.checksums.update(peer.session.confirmed_checksums())
    peer.log += peer.session.drain_confirmed()


def _check_convergence(match: _Match, live: list[_Peer], seed: int, length: int) -> str:
    """A reason the episode did not converge ("" if it did); counts the compared checksums in `match`."""
    short = [p.addr for p in live if len(p.log) < length]
    if short:
        return f"{short} confirmed fewer than {length} frames"
    truth_inputs = [inputs for _, inputs in live[0].log[:length]]
    for peer in live[1:]:
        if [inputs for _, inputs in peer.log[:length]] != truth_inputs:
            return f"{peer.addr} confirmed different inputs than {live[0].addr}"
    config = match.config
    lockstep = Lockstep(match.make_env(-1), seed, config.players, truth_inputs)
    truth = checksums(lockstep, at=lambda frame: frame < length and config.is_check_frame(frame))
    checked = 0
    for peer in live:
        for frame, checksum in peer.checksums.items():
            if frame in truth:
                checked += 1
                if checksum != truth[frame]:
                    match.checked += checked
                    return f"{peer.addr} confirmed checksum {checksum} at frame {frame}, lockstep gives {truth[frame]}"
    match.checked += checked
    if truth and checked < len(live):
        return "no confirmed checksums were compared"
    return ""
