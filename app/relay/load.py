"""What a relay measures of itself for its heartbeat: its lag (as admission control measures the server's),
relay time, packets per second and CPU, and each running match's progress for the dashboard.

The lag is measured as in-process (app/live/admission.py): a probe sleeps `probe_interval_s` and
notes how late it woke (the event loop's lag), with the longest time one packet took in
`MatchRoom.relay` since the previous probe. `LoadMeter.take` hands out the worst of each since the
previous heartbeat; the coordinator judges them with an `Admission` per relay (app/relay/room.py).
I/O-free; the caller passes the clock readings.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from app.live.match_room import MatchRoom
from app.live.metrics import Metrics, histogram_quantile

RECENT_PINGS = 32   # round-trip samples per match and heartbeat, for the dashboard's histogram


@dataclass(frozen=True)
class Load:
    """One heartbeat's figures; the lags are the worst since the previous heartbeat."""

    loop_lag_ms: float = 0.0
    relay_ms: float = 0.0
    relay_p99_ms: float | None = None
    packets_per_s: float = 0.0
    cpu_percent: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadMeter:
    """The relay's figures between two heartbeats, from its shared `Metrics` and the lag probe's samples."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._loop_lag_s = 0.0
        self._relay_s = 0.0
        self._last: tuple[float, float, list[tuple[float, float]]] | None = None   # (time, cpu, buckets) last take

    def sample(self, loop_lag_s: float) -> None:
        """One probe: how late it woke, and (read here) the longest relay since the previous probe."""
        self._loop_lag_s = max(self._loop_lag_s, loop_lag_s)
        self._relay_s = max(self._relay_s, self.metrics.take_relay_max())

    def take(self, now: float, cpu_s: float) -> Load:
        """The figures since the previous call (`now`: monotonic seconds, `cpu_s`: the process's CPU seconds)."""
        histogram = self.metrics.relay_seconds
        buckets = sorted((float(sample.labels["le"]), sample.value) for family in histogram.collect()
                         for sample in family.samples if sample.name.endswith("_bucket"))
        load = Load(loop_lag_ms=round(self._loop_lag_s * 1000, 1), relay_ms=round(self._relay_s * 1000, 2))
        if self._last is not None and now > self._last[0]:
            then, cpu_then, old_buckets = self._last
            old = dict(old_buckets)
            recent = [(bound, count - old.get(bound, 0.0)) for bound, count in buckets]
            p99 = histogram_quantile(0.99, recent)
            packets = recent[-1][1] if recent else 0.0   # the +Inf bucket counts every packet
            load = Load(load.loop_lag_ms, load.relay_ms, None if math.isnan(p99) else round(p99 * 1000, 3),
                        round(packets / (now - then), 1), round(100 * (cpu_s - cpu_then) / (now - then), 1))
        self._last = (now, cpu_s, buckets)
        self._loop_lag_s = self._relay_s = 0.0
        return load


def match_status(room: MatchRoom, now: float) -> dict[str, Any]:
    """What the dashboard shows of a running match (app/live/dashboard.py), as the relay knows it."""
    pings = list(room.rtt_samples)[-RECENT_PINGS:]
    return {"episode": room.episode, "frame": room.log.complete, "desync_frames": sorted(room.desync_frames)[:100],
            "faults": dict(room.faults), "rtt_ms": [round(rtt, 1) for rtt in pings],
            "seats": {addr: {"ping_ms": None if seat.ping_ms is None else round(seat.ping_ms, 1),
                             "silent_s": round(max(0.0, now - seat.last_heard), 1)}
                      for addr, seat in room.seats.items()}}
