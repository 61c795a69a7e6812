"""Admission control: whether new matches may start, decided from the server's measured lag, I/O-free.

Under overload the server starts no new match rather than let running matches degrade (DESIGN.md,
Server). The signal is measured, not a count of matches: every `probe_interval_s` the Hub's lag probe
sleeps and reports how late it woke up (the event loop's lag: under eventlet an overloaded server
shows it at once), together with the longest time one packet took in `MatchRoom.relay` since the
previous probe. A packet can wait that long to be read and then take that long to be relayed, so
their sum is the lag a packet sees in the server; `Figures.lag_s` is its maximum over the last
`window_s`.

Hysteresis keeps the decision from flapping: admission closes once the lag has stayed above
`max_lag_s` (the high-water mark) for `close_after_s`, and reopens only once it has stayed below
`reopen_lag_s` (half of it unless given) for the longer `reopen_after_s`. `observe` returns a
`Closed` or `Opened` when the state changes, else None: the Hub logs, records and acts on it.

The lag shows a match's load only once it runs, so after reopening the held matches start in a slow
start, not all at once (on a busy 2-core machine, 15 Pong matches of the demo released together took
the server from 15 ms to 3.7 s of lag): `start_budget` allows 1 match start in the first `ramp_step_s`, 3 in all by the end
of the second, 7 by the third, doubling, until admission closes again. A server that never closed
starts every match at once, as without admission control.

What is held while admission is closed (app/live/waiting.py, app/live/hub.py): every match a
waiting room would start, the AI fill of a timed-out wait included (it adds load too); participants
stay in the waiting room and are told the server is busy; held matches start in arrival order once
admission reopens. Running matches, rejoins and AI takeovers of running matches are never held.

Timeouts while held: a participant is not punished for the server's overload, so time spent in a
waiting room while admission is closed does not count towards the room's `timeout_s` (its clock
pauses). Only a participant held for longer than `max_hold_s` in all (five minutes: the server has
been overloaded for that long) leaves the room as a timed-out "leave" room would send them on: the
study outcome "waiting_timeout" (the page, completion code and redirect the researcher configured for
it), recorded with the reason "server_busy" so that the data tell the two apart.

With relays (app/relay/), each relay's lag is judged by an `Admission` of its own on the coordinator,
and `gate` feeds in whether any of them still takes new matches: new matches wait while the
coordinator lags or while every relay does, with the same message and the same slow start after.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from game.errors import CoplayError

DEFAULT_MAX_LAG_MS = 150.0   # ~ the 8 frames at 60 fps a peer predicts through before it stalls
MIN_MAX_LAG_MS = 10.0      # below this a healthy server's own scheduling noise would close admission
MAX_MAX_LAG_MS = 60_000.0
MAX_LAG_ENV = "COPLAY_MAX_RELAY_LAG_MS"
RAMP_STEPS = 10           # the slow start ends after this many steps (2047 starts allowed by then)
BUSY_MESSAGE = "Many people are playing right now; your game will start in a moment."


class AdmissionError(CoplayError):
    """An admission setting out of range."""

    code = "bad_admission_setting"


@dataclass(frozen=True)
class AdmissionSettings:
    """When new matches wait. `max_lag_s` 0 turns admission control off (every match starts at once)."""

    max_lag_s: float = DEFAULT_MAX_LAG_MS / 1000
    reopen_lag_s: float | None = None   # the low-water mark; None: half of max_lag_s
    close_after_s: float = 1.0          # the lag must stay above max_lag_s this long to close
    reopen_after_s: float = 3.0         # ... and below the low-water mark this long to reopen
    window_s: float = 0.5               # the lag figure is the worst sample of this window
    probe_interval_s: float = 0.05      # how long the lag probe sleeps between samples
    max_hold_s: float = 300.0           # a participant held longer than this leaves the waiting room
    ramp_step_s: float = 1.0            # after reopening, the allowed match starts double every this long

    @property
    def enabled(self) -> bool:
        return self.max_lag_s > 0

    @property
    def low_water_s(self) -> float:
        return self.max_lag_s / 2 if self.reopen_lag_s is None else self.reopen_lag_s

    def check(self) -> AdmissionSettings:
        """Self, or raise AdmissionError saying which setting is wrong and what it may be."""
        if self.max_lag_s == 0:
            return self
        _check_number("max relay lag", self.max_lag_s * 1000, MIN_MAX_LAG_MS, MAX_MAX_LAG_MS, "ms",
                      "; give 0 to turn admission control off")
        if not 0 <= self.low_water_s < self.max_lag_s:
            raise AdmissionError(f"the reopening lag must be at least 0 and below the max relay lag "
                                 f"({self.max_lag_s * 1000:g} ms), got {self.low_water_s * 1000:g} ms")
        for name, value in (("close_after_s", self.close_after_s), ("reopen_after_s", self.reopen_after_s),
                            ("window_s", self.window_s), ("probe_interval_s", self.probe_interval_s),
                            ("max_hold_s", self.max_hold_s), ("ramp_step_s", self.ramp_step_s)):
            _check_number(name, value, 0.001, 86_400, "s")
        return self


DEFAULT_ADMISSION = AdmissionSettings()


def settings_for(max_lag_ms: float) -> AdmissionSettings:
    """The default settings with the high-water mark `max_lag_ms` (0: off); raises AdmissionError."""
    _check_number("max relay lag", max_lag_ms, 0, MAX_MAX_LAG_MS, "ms")
    return AdmissionSettings(max_lag_s=max_lag_ms / 1000).check()


def parse_max_lag_ms(text: str) -> float:
    """`--max-relay-lag-ms` / $COPLAY_MAX_RELAY_LAG_MS as a number of ms; raises AdmissionError."""
    try:
        value = float(text)
    except ValueError:
        raise AdmissionError(f"the max relay lag must be a number of milliseconds (e.g. 150, or 0 for off), "
                             f"got {text!r}") from None
    settings_for(value)
    return value


def _check_number(name: str, value: float, low: float, high: float, unit: str, hint: str = "") -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
            or not low <= value <= high:
        raise AdmissionError(f"{name} must be {low:g} to {high:g} {unit}, got {value!r}{hint}")


@dataclass(frozen=True)
class Figures:
    """The lag figures of the last window, seconds."""

    lag_s: float = 0.0        # the figure compared with the marks: worst loop lag + relay time of one sample
    loop_lag_s: float = 0.0   # worst event-loop lag
    relay_s: float = 0.0      # worst time one packet took in the relay

    def as_ms(self) -> dict[str, float]:
        return {"lag_ms": round(self.lag_s * 1000, 1), "loop_lag_ms": round(self.loop_lag_s * 1000, 1),
                "relay_ms": round(self.relay_s * 1000, 2)}


@dataclass(frozen=True)
class Closed:
    figures: Figures       # this server's, or the least-lagged relay's when the relays closed it
    above_s: float | None  # how long this server's lag had stayed above the high-water mark; None: closed
    #                        because no relay takes new matches (`gate`: each relay's own Admission judged it)


@dataclass(frozen=True)
class Opened:
    figures: Figures
    closed_s: float  # how long admission was closed


class Admission:
    """The open/closed state, fed one lag sample per probe (`observe`)."""

    def __init__(self, settings: AdmissionSettings = DEFAULT_ADMISSION) -> None:
        self.settings = settings.check()
        self.open = True           # new matches may start: the server's own state and the relays' gate
        self._own_open = True      # the hysteresis state of this server's own lag
        self._relays_open = True   # some relay takes new matches (always, without relays)
        self.relays: list[dict[str, Any]] = []   # each relay's figures, for the dashboard (app/relay/room.py)
        self.figures = Figures()
        self._samples: deque[tuple[float, float, float]] = deque()   # (at, loop lag, relay time)
        self._since: float | None = None    # since when the lag has been past the mark that would change the state
        self._closed_at = 0.0
        self._reopened_at: float | None = None   # the slow start after reopening runs since
        self._ramp_starts = 0                     # matches started in it

    def status(self) -> dict[str, Any]:
        """Whether new matches start now, the limit and the latest figures (the dashboard's health panel)."""
        return {"open": self.open, "enabled": self.settings.enabled,
                "max_lag_ms": round(self.settings.max_lag_s * 1000, 1), **self.figures.as_ms(),
                **({"relays_open": self._relays_open, "relays": self.relays} if self.relays else {})}

    def start_budget(self, now: float) -> float:
        """How many more matches may start now: 0 while closed, limited in the slow start after reopening."""
        if not self.open:
            return 0
        if self._reopened_at is None:
            return math.inf
        steps = min(RAMP_STEPS, int((now - self._reopened_at) / self.settings.ramp_step_s + 1e-9))
        return max(0, (1 << (steps + 1)) - 1 - self._ramp_starts)

    def started(self, matches: int) -> None:
        """`matches` new matches started (they count against the slow start's budget)."""
        self._ramp_starts += matches

    def observe(self, now: float, loop_lag_s: float, relay_s: float) -> Closed | Opened | None:
        """Take one probe's sample (`relay_s`: the longest relay since the previous sample)."""
        samples = self._samples
        samples.append((now, max(0.0, loop_lag_s), max(0.0, relay_s)))
        while samples[0][0] <= now - self.settings.window_s:
            samples.popleft()
        self.figures = Figures(lag_s=max(loop + relay for _, loop, relay in samples),
                               loop_lag_s=max(loop for _, loop, _ in samples),
                               relay_s=max(relay for _, _, relay in samples))
        if self._reopened_at is not None and now - self._reopened_at >= RAMP_STEPS * self.settings.ramp_step_s:
            self._reopened_at = None   # the slow start is over
        if not self.settings.enabled:
            return None
        lag = self.figures.lag_s
        past = lag > self.settings.max_lag_s if self._own_open else lag < self.settings.low_water_s
        if not past:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        held = now - self._since
        if self._own_open and held >= self.settings.close_after_s:
            self._own_open, self._since = False, None
            return self._settle(now, self.figures, held)
        if not self._own_open and held >= self.settings.reopen_after_s:
            self._own_open, self._since = True, None
            return self._settle(now, self.figures, held)
        return None

    def gate(self, now: float, relays_open: bool, figures: Figures) -> Closed | Opened | None:
        """Whether any relay takes new matches (each judged by its own `Admission`); `figures`: the best one's."""
        self._relays_open = relays_open
        return self._settle(now, figures, None)

    def _settle(self, now: float, figures: Figures, held: float | None) -> Closed | Opened | None:
        """The change of the overall state (own lag and relays' gate), if any; a reopening starts the slow start."""
        open_now = self._own_open and self._relays_open
        if open_now == self.open:
            return None
        self.open = open_now
        if open_now:
            self._reopened_at, self._ramp_starts = now, 0
            return Opened(figures, now - self._closed_at)
        self._closed_at, self._reopened_at = now, None
        return Closed(figures, held)
