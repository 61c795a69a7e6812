"""A deterministic simulated network on a virtual clock.

Every delivery is decided by a seeded `Rng`: one-way latency, jitter, loss,
duplication and reordering come from a named profile, so a run with the same seed
delivers the same packets at the same virtual times.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

from game.rng import Rng
from netcode.transport import Endpoint


@dataclass(frozen=True)
class NetworkProfile:
    """One-way link behaviour. Probabilities are per packet."""

    name: str
    latency_ms: float
    jitter_ms: float
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0


PROFILES = {
    "lan": NetworkProfile("lan", latency_ms=1, jitter_ms=0.5),
    "wifi": NetworkProfile("wifi", latency_ms=12, jitter_ms=6, loss=0.01, duplicate=0.002, reorder=0.01),
    "mobile": NetworkProfile("mobile", latency_ms=45, jitter_ms=20, loss=0.03, duplicate=0.01, reorder=0.03),
    "bad": NetworkProfile("bad", latency_ms=90, jitter_ms=45, loss=0.10, duplicate=0.03, reorder=0.08),
}


def get_profile(name: str) -> NetworkProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown network profile {name!r}; choose one of {sorted(PROFILES)}") from None


def link_delays(profile: NetworkProfile, rng: Rng) -> list[float]:
    """The fate of one packet on a link: its copies' one-way delays in ms ([] = lost, two = duplicated).

    A reordered copy gets roughly one more latency on top, so later packets overtake it.
    Shared by `SimNetwork` (virtual clock) and the load tester's wall-clock link shaper.
    """
    if rng.random() < profile.loss:
        return []
    copies = 2 if rng.random() < profile.duplicate else 1
    delays = []
    for _ in range(copies):
        delay = profile.latency_ms + profile.jitter_ms * (2 * rng.random() - 1)
        if rng.random() < profile.reorder:
            delay += profile.latency_ms + profile.jitter_ms * 2 * rng.random()
        delays.append(max(0.05, delay))
    return delays


class VirtualClock:
    """Milliseconds that pass only when told to."""

    def __init__(self) -> None:
        self.now_ms = 0.0

    def __call__(self) -> float:
        return self.now_ms

    def advance_to(self, ms: float) -> None:
        if ms < self.now_ms:
            raise ValueError(f"the virtual clock cannot go back from {self.now_ms} to {ms}")
        self.now_ms = ms


class SimNetwork:
    """Packets in flight, delivered when the virtual clock reaches their arrival time."""

    def __init__(self, profile: NetworkProfile, seed: int, clock: VirtualClock) -> None:
        self.profile = profile
        self.clock = clock
        self.rng = Rng(seed)
        self._in_flight: dict[str, list[tuple[float, int, str, str]]] = {}
        self._seq = 0
        self._muted: set[str] = set()
        self.sent = self.dropped = self.duplicated = self.delivered = 0

    def endpoint(self, addr: str) -> Endpoint:
        return Endpoint(self, addr)

    def mute(self, addr: str) -> None:
        """Drop everything `addr` sends or is sent from now on (a vanished peer)."""
        self._muted.add(addr)

    def deliver(self, sender: str, to: str, data: str) -> None:
        self.sent += 1
        delays = [] if sender in self._muted or to in self._muted else link_delays(self.profile, self.rng)
        if not delays:
            self.dropped += 1
            return
        self.duplicated += len(delays) - 1
        for delay in delays:
            heapq.heappush(self._in_flight.setdefault(to, []), (self.clock() + delay, self._seq, sender, data))
            self._seq += 1

    def take(self, addr: str) -> list[tuple[str, str]]:
        """Packets for `addr` whose arrival time has come (others keep waiting)."""
        queue = self._in_flight.get(addr, [])
        due = []
        while queue and queue[0][0] <= self.clock():
            due.append(heapq.heappop(queue))
        if addr in self._muted:
            return []
        self.delivered += len(due)
        return [(sender, data) for _, _, sender, data in due]
