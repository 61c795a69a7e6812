"""Client-side network shaping for headless participants (`coplay loadtest --profile`).

A `LinkShaper` holds one direction of a participant's link to the server: every item
pushed into it is lost, delayed, duplicated or reordered as a `netcode.sim` profile says
(`netcode.sim.link_delays`, the same rules the simulator applies on its virtual clock),
and comes out of `due()` once the wall clock (injected, so tests use a fake one) reaches
its time. `ShapedLink` pairs an outgoing and an incoming shaper; the headless
participant pushes its netcode packets through them (scene events are not shaped).
"""
from __future__ import annotations

import heapq
import threading
import time
from typing import Any, Callable, Generic, TypeVar

from game.rng import Rng
from netcode.sim import NetworkProfile, get_profile, link_delays

T = TypeVar("T")
Clock = Callable[[], float]   # seconds


class LinkShaper(Generic[T]):
    """One direction of a shaped link: `push` (any thread), `due` (items whose time has come, in order)."""

    def __init__(self, profile: NetworkProfile, rng: Rng, clock: Clock = time.monotonic) -> None:
        self.profile = profile
        self.rng = rng
        self.clock = clock
        self._lock = threading.Lock()
        self._queue: list[tuple[float, int, T]] = []
        self._seq = 0
        self.pushed = self.dropped = self.duplicated = self.delivered = 0

    def push(self, item: T) -> None:
        with self._lock:
            self.pushed += 1
            delays = link_delays(self.profile, self.rng)
            if not delays:
                self.dropped += 1
                return
            self.duplicated += len(delays) - 1
            now = self.clock()
            for delay_ms in delays:
                heapq.heappush(self._queue, (now + delay_ms / 1000.0, self._seq, item))
                self._seq += 1

    def due(self) -> list[T]:
        """Items whose delivery time has come, earliest first (others keep waiting)."""
        now = self.clock()
        out: list[T] = []
        with self._lock:
            while self._queue and self._queue[0][0] <= now:
                out.append(heapq.heappop(self._queue)[2])
            self.delivered += len(out)
        return out

    def next_due(self) -> float | None:
        """The clock time of the next delivery, None when nothing is in flight."""
        with self._lock:
            return self._queue[0][0] if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def counts(self) -> dict[str, int]:
        return {"pushed": self.pushed, "dropped": self.dropped, "duplicated": self.duplicated,
                "delivered": self.delivered}


class ShapedLink:
    """A participant's two directions to the server, each shaped by the same profile with its own
    seeded Rng. Round trip to the server is about twice the profile's one-way latency."""

    def __init__(self, profile: str | NetworkProfile, seed: int, clock: Clock = time.monotonic) -> None:
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.outgoing: LinkShaper[Any] = LinkShaper(self.profile, Rng(seed * 2 + 1), clock)
        self.incoming: LinkShaper[Any] = LinkShaper(self.profile, Rng(seed * 2 + 2), clock)

    def next_due(self) -> float | None:
        times = [t for t in (self.outgoing.next_due(), self.incoming.next_due()) if t is not None]
        return min(times) if times else None

    def counts(self) -> dict[str, dict[str, int]]:
        return {"outgoing": self.outgoing.counts(), "incoming": self.incoming.counts()}
