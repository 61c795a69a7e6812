"""One budget for every message a client sends, and the tally of what was refused.

Each connection has a token bucket, and so has its participant: a message must find a token in
both, so a second tab (or a reconnection) shares the participant's budget instead of doubling it.
Opening a connection costs `Budget.connect_cost` tokens of the participant's bucket.

Refusals are tallied per connection by reason and handed out as one `Report` at most every
`Budget.report_every_s` (the first refusal after a quiet spell at once), so that a flood costs
one log line a second, not one per message. A connection refused for `Budget.disconnect_after_s`
with no quiet spell of `Budget.quiet_s` in between is told to go, and its participant's budget
is left `Budget.penalty_s` in debt: no new connection, no message from another tab, until then.

I/O-free: every method takes `now` (seconds, monotonic), so tests drive it with a fake clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class Budget:
    """How much a client may send."""

    rate: float = 240.0               # messages a second, sustained, per connection and per participant
    burst: float = 480.0              # messages at once, after a quiet spell
    connect_cost: float = 60.0        # a new connection costs this many messages of the participant's budget
    report_every_s: float = 1.0       # at most one report of refusals a second per connection
    quiet_s: float = 1.0              # a flood ends after this long without a refusal for the rate
    disconnect_after_s: float = 2.0   # a flood that lasts longer than this ends the connection
    penalty_s: float = 3.0            # ... and leaves the participant without budget for this long


DEFAULT_BUDGET = Budget()


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; starts full."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now

    def refill(self, now: float) -> float:
        """The tokens there are at `now`."""
        if now > self.last:
            tokens = self.tokens + (now - self.last) * self.rate
            self.tokens = tokens if tokens < self.burst else self.burst   # min(), without a call per message
            self.last = now
        return self.tokens

    def take(self, now: float) -> bool:
        """Spend one token if there is one at `now`."""
        if self.refill(now) < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class Report:
    """Refusals of one connection since its last report: {reason: count}, over `seconds`;
    `example` says what the first of them was, when the caller said."""

    participant: str
    counts: dict[str, int]
    seconds: float
    disconnect: bool = False
    example: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class _Connection:
    participant: str
    bucket: TokenBucket
    shared: TokenBucket                    # the participant's, shared by all its connections
    counts: dict[str, int] = field(default_factory=dict)
    example: str = ""
    counting_since: float = 0.0
    last_report: float = float("-inf")
    flood_since: float | None = None
    last_limited: float = float("-inf")
    gone: bool = False                     # told to disconnect: refuse quietly until closed


class RateLimit:
    """Budgets and refusal tallies of every open connection (any hashable id, e.g. a Socket.IO sid)."""

    def __init__(self, budget: Budget = DEFAULT_BUDGET, max_participants: int = 10_000) -> None:
        self.budget = budget
        self.max_participants = max_participants
        self._connections: dict[str, _Connection] = {}
        self._participants: dict[str, TokenBucket] = {}
        self._counting: set[str] = set()   # connections with refusals not yet reported

    def open(self, conn: str, participant: str, now: float) -> bool:
        """Start counting connection `conn` of `participant`. False, and nothing opened, when the
        participant's budget cannot pay for a new connection now."""
        b = self.budget
        shared = self._participants.pop(participant, None) or TokenBucket(b.rate, b.burst, now)
        self._participants[participant] = shared   # the most recently used last: the oldest is dropped first
        if len(self._participants) > self.max_participants:
            del self._participants[next(iter(self._participants))]
        if shared.refill(now) < b.connect_cost:
            return False
        shared.tokens -= b.connect_cost
        self._connections[conn] = _Connection(participant, TokenBucket(b.rate, b.burst, now), shared)
        return True

    def charge(self, conn: str, now: float) -> bool:
        """Take one message of `conn` from its budgets; False when refused (tallied as rate_limited).
        An unknown or closing connection is refused, and nothing is tallied."""
        c = self._connections.get(conn)
        if c is None or c.gone:
            return False
        if c.bucket.refill(now) >= 1 and c.shared.refill(now) >= 1:
            c.bucket.tokens -= 1
            c.shared.tokens -= 1
            return True
        if c.flood_since is None or now - c.last_limited > self.budget.quiet_s:
            c.flood_since = now
        c.last_limited = now
        self._count(conn, c, RATE_LIMITED, now)
        return False

    def refused(self, conn: str, reason: str, now: float, example: str = "") -> None:
        """Tally a message of `conn` refused for `reason` (a bounded set of words); `example`
        describes it, kept if it is the first of the next report."""
        c = self._connections.get(conn)
        if c is not None:
            self._count(conn, c, reason, now, example)

    def report(self, conn: str, now: float) -> Report | None:
        """The refusals of `conn` to report now: at most one report every `report_every_s`, and one
        that says to disconnect once the connection has been over its rate for too long."""
        c = self._connections.get(conn)
        if c is None or not c.counts or c.gone:
            return None
        flooding_for = now - c.flood_since if c.flood_since is not None and c.last_limited == now else 0.0
        disconnect = flooding_for > self.budget.disconnect_after_s
        if not disconnect and now - c.last_report < self.budget.report_every_s:
            return None
        if disconnect:
            c.gone = True
            c.shared.refill(now)
            c.shared.tokens = -self.budget.rate * self.budget.penalty_s
        return self._take(conn, c, now, disconnect)

    def due(self, now: float) -> Iterator[tuple[str, Report]]:
        """(connection, report) of every connection whose refusals have waited `report_every_s`."""
        for conn in list(self._counting):
            c = self._connections[conn]
            if now - c.last_report >= self.budget.report_every_s:
                yield conn, self._take(conn, c, now, False)

    def close(self, conn: str, now: float | None = None) -> Report | None:
        """Stop counting `conn`; the refusals not reported yet, if any (`now` times them)."""
        c = self._connections.pop(conn, None)
        if c is None:
            return None
        report = self._take(conn, c, c.counting_since if now is None else now, False) if c.counts else None
        self._counting.discard(conn)
        return report

    def __len__(self) -> int:
        return len(self._connections)

    def _count(self, conn: str, c: _Connection, reason: str, now: float, example: str = "") -> None:
        if not c.counts:
            c.counting_since = now
            c.example = example
            self._counting.add(conn)
        c.counts[reason] = c.counts.get(reason, 0) + 1

    def _take(self, conn: str, c: _Connection, now: float, disconnect: bool) -> Report:
        report = Report(c.participant, c.counts, round(max(0.0, now - c.counting_since), 3), disconnect, c.example)
        c.counts = {}
        c.last_report = now
        self._counting.discard(conn)
        return report
