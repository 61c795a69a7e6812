"""The fixed-step schedule of a match loop: which ticks are due now, and when the next one is.

Tick i is due at `start + i * period`. A loop asks `due(now)` how many ticks to run back
to back, runs them, and calls `ticked(skip)` after each one with the frames time sync
wants left out (`MatchClient.take_skip_frames()`); between rounds it waits `delay(now)`.
The schedule never sleeps and never reads a clock: the caller passes `now`, in the same
unit as `period` (seconds in CPython, milliseconds in the browser).

A loop that fell behind (a late timer, a busy process) catches up at most MAX_CATCH_UP
ticks per round; more than MAX_DEBT ticks behind, the backlog is dropped and the schedule
restarts from now, so frames are not owed forever. The headless participant and the
server's bots use this class; static/worker_core.js mirrors it with the same constants
(tests/test_scheduler.py checks that they agree).
"""
from __future__ import annotations

MAX_CATCH_UP = 4   # ticks run back to back in one round when the loop fell behind
MAX_DEBT = 8       # ticks; further behind than this, the schedule restarts from now


class FixedStep:
    """The schedule of one episode's ticks, every `period`, the first due at `now`."""

    def __init__(self, period: float, now: float) -> None:
        if period <= 0:
            raise ValueError(f"period must be positive, got {period}")
        self.period = period
        self.next_at = now

    def due(self, now: float) -> int:
        """How many ticks to run now: 0 when the next one is still ahead, else 1 to MAX_CATCH_UP."""
        if now < self.next_at:
            return 0
        if now - self.next_at > MAX_DEBT * self.period:
            self.next_at = now
        return min(MAX_CATCH_UP, int((now - self.next_at) // self.period) + 1)

    def ticked(self, skip_frames: int = 0) -> None:
        """One tick ran; the next is a period later, plus `skip_frames` periods left out for time sync."""
        self.next_at += (1 + skip_frames) * self.period

    def delay(self, now: float) -> float:
        """How long to wait until the next tick is due (0 when it already is)."""
        return max(0.0, self.next_at - now)
