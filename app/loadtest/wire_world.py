"""What a wire generator process's participants share (app/loadtest/wire.py): one `Ticker` that runs every
seat's ticks on their fixed-step schedules (netcode.scheduler) and notes how late each tick ran, a monitor
coroutine that notes the loop's lag (both feed the process's `SelfCheck`, app.loadtest.selfcheck), the
loop's HTTP connector and the match sims (`WireWorld`).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from app.loadtest.selfcheck import MONITOR_SECONDS, SelfCheck
from app.loadtest.wire_match import SimRegistry

if TYPE_CHECKING:
    from app.loadtest.wire_participant import Playing

TICK_GRAIN_S = 0.001        # ticks due this soon run in the current wake-up


class Ticker:
    """Every seat's ticks on one loop: a heap of their next tick times; each due seat runs the
    ticks its FixedStep says (at most a few when behind), and how late each ran goes to `check`.
    A wake-up also runs the ticks due within TICK_GRAIN_S, so the seats of a process share wake-ups
    (a tick up to a millisecond early is well inside a browser timer's own jitter). A wake-up is a
    plain timer callback (no task or future each time: there are hundreds a second)."""

    def __init__(self, check: SelfCheck) -> None:
        self.check = check
        self._heap: list[tuple[float, int, Playing]] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def add(self, playing: Playing) -> None:
        heapq.heappush(self._heap, (playing.schedule.next_at, next(self._seq), playing))
        self._schedule()

    async def run(self) -> None:
        """Tick until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._schedule()
        try:
            await self._loop.create_future()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._loop, self._timer, self._timer_at = None, None, float("inf")

    def _schedule(self) -> None:
        """Wake when the earliest seat is due (sooner than a wake-up already set, if one is)."""
        if self._loop is None or not self._heap:
            return
        at = self._heap[0][0]
        if self._timer is not None:
            if at >= self._timer_at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_later(max(0.0, at - time.monotonic()), self._round)

    def _round(self) -> None:
        """Every seat due now runs once (its FixedStep says how many ticks), then the loop gets its turn,
        so a generator behind schedule still reads its sockets (and says it is late)."""
        self._timer, self._timer_at = None, float("inf")
        heap, check, monotonic = self._heap, self.check, time.monotonic
        due_by = monotonic() + TICK_GRAIN_S
        ran = []
        while heap and heap[0][0] <= due_by:
            playing = heapq.heappop(heap)[2]
            if playing.stopped:
                continue
            now = monotonic()
            schedule = playing.schedule
            for _ in range(schedule.due(now if now > due_by else due_by)):
                check.tick_late(now - schedule.next_at)
                playing.tick(now)
                schedule.ticked()
            if playing.out:
                channel = playing.channel
                if channel is not None and channel.is_open:
                    playing.send_on_channel()
                elif playing.flushing is None or playing.flushing.done():
                    playing.flushing = asyncio.ensure_future(playing.person.flush(playing))
            ran.append(playing)
        for playing in ran:
            if not playing.stopped:
                heapq.heappush(heap, (playing.schedule.next_at, next(self._seq), playing))
        self._schedule()


async def monitor_lag(check: SelfCheck) -> None:
    """Wake every MONITOR_SECONDS and note how late: the event loop's own lag."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + MONITOR_SECONDS
        await asyncio.sleep(MONITOR_SECONDS)
        check.lagged(loop.time() - due)



class WireWorld:
    """What a process's wire participants share: the loop's HTTP connector, the match sims, the
    ticker and the self-check."""

    def __init__(self, check: SelfCheck) -> None:
        self.check = check
        self.sims = SimRegistry()
        self.ticker = Ticker(check)
        self.connector: aiohttp.TCPConnector | None = None
        self.stopping: str | None = None
        self._bundle: tuple[bytes, Any] = (b"", None)

    def bundle_games(self, body: bytes) -> Any:
        """The `games` of a /bundle.json body, parsed once per process (every participant still GETs
        the bundle, as a page does; parsing ~270 KB each time would only block the loop)."""
        if body != self._bundle[0]:
            self._bundle = (body, json.loads(body).get("games"))
        return self._bundle[1]

    async def start(self) -> list[asyncio.Task[None]]:
        self.connector = aiohttp.TCPConnector(limit=0)
        return [asyncio.ensure_future(self.ticker.run()), asyncio.ensure_future(monitor_lag(self.check))]

