"""Who may create a participant: platform ids checked and normalised, anonymous entry rate-limited.

I/O-free: `Flow.enter` (app/live/flow.py) asks these and writes the rows; `EntryPause` (the researcher's
pause of new entries) reads and writes its events through the store it is given.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from app.live.ratelimit import TokenBucket

PLATFORM_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,100}")
# Anonymous entries per client address: a burst of 5, then one every 10 s.
ANONYMOUS_BURST = 5
ANONYMOUS_PER_SECOND = 0.1
MAX_TRACKED_CLIENTS = 10_000


def normalise_platform_id(raw: str, param: str, case_sensitive: bool) -> str:
    """`raw` trimmed (and lower-cased unless `case_sensitive`); ValueError saying what is wrong with it."""
    value = raw.strip()
    if not PLATFORM_ID.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise ValueError(f"The link's {param} ({shown!r}) is not a valid id: it must be 1 to 100 letters, "
                         "digits or the characters _ . : @ - (check that the study platform filled it in).")
    return value if case_sensitive else value.lower()


class AnonymousLimit:
    """A token bucket per client address for entries without a platform id."""

    def __init__(self, now: Callable[[], float], burst: float = ANONYMOUS_BURST,
                 rate: float = ANONYMOUS_PER_SECOND) -> None:
        self.now = now
        self.burst = burst
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}

    def wait(self, client: str) -> float:
        """0 when `client` may enter now (and counts the entry), else the seconds until it may."""
        now = self.now()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_CLIENTS:
                self._forget_full(now)
            bucket = self._buckets[client] = TokenBucket(self.rate, self.burst, now)
        if bucket.take(now):
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they would allow a whole burst again), or else all of them."""
        full_after = self.burst / self.rate
        kept = {client: bucket for client, bucket in self._buckets.items() if now - bucket.last < full_after}
        self._buckets = kept if len(kept) < MAX_TRACKED_CLIENTS else {}


PAUSED, RESUMED = "entries_paused", "entries_resumed"


class EntryPause:
    """Whether the researcher has paused new entries; kept as events in the store, so it survives a restart.

    `store` needs `events(kind)` and `log_event(kind, data)` (app/data/store.py)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        last = max(store.events(kind=PAUSED) + store.events(kind=RESUMED), key=lambda e: e["id"], default=None)
        self.paused = last is not None and last["kind"] == PAUSED
        self.since: str | None = last["at"] if last is not None else None
        self.by: str | None = last["data"].get("by") if last is not None else None

    def set(self, paused: bool, by: str) -> bool:
        """Pause (or resume) new entries on behalf of admin `by`; False, changing nothing, when already so."""
        if paused == self.paused:
            return False
        self.store.log_event(PAUSED if paused else RESUMED, {"by": by})
        self.paused, self.since, self.by = paused, self.store.now(), by
        return True

    def state(self) -> dict[str, Any]:
        return {"paused": self.paused, "since": self.since, "by": self.by}
