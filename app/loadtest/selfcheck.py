"""The load generator measures itself, so a slow run is never blamed on the server by mistake.

Each generator process keeps one `SelfCheck`: the lateness of every match tick (how long after
its scheduled time it really ran), the lag of its event loop or threads (a monitor asks to wake
every `MONITOR_SECONDS` and notes how late it woke), its own CPU time (`time.process_time`, all
threads) and the packets it sent and received. The parent merges the processes' reports
(`merge`) and `verdict` decides whether the generator kept up:

- tick lateness p99 above LATE_LIMIT_FRAMES frame periods (33 ms at 60 fps): the generator did not
  offer its packets at the frame rate it was asked for. (A fixed-step schedule runs a late tick's
  backlog at once, so one frame of lateness still offers the full rate; a browser's own timers jitter
  by that much too. Two frames late at p99 means it was falling behind, not jittering.)
- monitor lag p99 above LATE_LIMIT_FRAMES frame periods: its loop (or, with threads, the GIL) was saturated;
- CPU above `CPU_SATURATED` of the core each process had.

Any of these makes the generator the bottleneck: the run's verdict is INCONCLUSIVE, never a FAIL
blaming the server. A match that took much longer than its frames (`SLOW_MATCH_FACTOR`) while the
ticks were on time is not the generator's doing (the peers stalled, waiting for inputs the relay
delivered late), so it is reported but does not change the verdict.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterable, Mapping

BUCKET_MS = 0.1           # histogram resolution
MAX_BUCKET = 2000         # buckets of BUCKET_MS up to 200 ms; later samples count in the last one
MONITOR_SECONDS = 0.05    # the lag monitor's wake-up period
LATE_LIMIT_FRAMES = 2     # p99 lateness (ticks or loop) above this many frames: the generator fell behind
CPU_SATURATED = 0.9       # share of a process's core above which it counts as saturated
SLOW_MATCH_FACTOR = 1.25  # a match slower than this factor of its length is reported as slow
BOTTLENECK = "the load generator, not the server, was the bottleneck"


class Histogram:
    """Milliseconds in fixed buckets of BUCKET_MS (so processes' histograms add up exactly), plus the max."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.max_ms = 0.0
        self.total_ms = 0.0

    def add(self, ms: float) -> None:
        if ms < 0.0:
            ms = 0.0
        bucket = int(ms / BUCKET_MS)
        if bucket > MAX_BUCKET:
            bucket = MAX_BUCKET
        counts = self.counts
        counts[bucket] = counts.get(bucket, 0) + 1
        self.n += 1
        self.total_ms += ms
        if ms > self.max_ms:
            self.max_ms = ms

    def merge(self, other: Histogram) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.n += other.n
        self.total_ms += other.total_ms
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, q: float) -> float | None:
        """The upper edge of the bucket holding the q-th percentile (never above the max seen)."""
        if not self.n:
            return None
        rank, seen = q / 100 * self.n, 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(self.max_ms, (bucket + 1) * BUCKET_MS)
        return self.max_ms

    def summary(self) -> dict[str, float | int | None]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 2)
        return {"mean": r(self.total_ms / self.n) if self.n else None, "p50": r(self.percentile(50)),
                "p99": r(self.percentile(99)), "max": r(self.max_ms) if self.n else None, "samples": self.n}

    def to_json(self) -> dict[str, Any]:
        return {"counts": {str(k): v for k, v in self.counts.items()}, "n": self.n, "max_ms": self.max_ms,
                "total_ms": self.total_ms}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Histogram:
        h = cls()
        h.counts = {int(k): int(v) for k, v in data.get("counts", {}).items()}
        h.n, h.max_ms, h.total_ms = int(data.get("n", 0)), float(data.get("max_ms", 0)), float(data.get("total_ms", 0))
        return h


class SelfCheck:
    """One generator process's own figures; safe to feed from several threads (`threads=True`, the
    full mode's participant threads) or lock-free for one event loop (the wire mode's)."""

    def __init__(self, threads: bool = True) -> None:
        self.ticks = Histogram()      # lateness of match ticks, ms
        self.lag = Histogram()        # lateness of the monitor's wake-ups, ms
        self.packets_sent = 0
        self.packets_received = 0
        self.channel_packets = 0      # of packets_sent, those sent on a match channel (the rest: Socket.IO)
        self.matches = 0
        self.slow_matches = 0
        self._lock: threading.Lock | contextlib.nullcontext[None] = threading.Lock() if threads else contextlib.nullcontext()
        self._cpu0 = time.process_time()
        self._wall0 = time.monotonic()
        self._cpu: float | None = None
        self._wall: float | None = None

    def restart(self) -> None:
        """Start the CPU and wall clocks now (when the load starts, after imports and set-up)."""
        self._cpu0, self._wall0 = time.process_time(), time.monotonic()

    def tick_late(self, seconds: float) -> None:
        with self._lock:
            self.ticks.add(seconds * 1000.0)

    def lagged(self, seconds: float) -> None:
        with self._lock:
            self.lag.add(seconds * 1000.0)

    def sent(self, n: int = 1) -> None:
        self.packets_sent += n

    def received(self, n: int = 1) -> None:
        self.packets_received += n

    def match_took(self, frames: int, fps: int, seconds: float) -> None:
        """An episode of `frames` frames at `fps` played in `seconds` (first tick to the end)."""
        with self._lock:
            self.matches += 1
            self.slow_matches += frames > 0 and seconds > SLOW_MATCH_FACTOR * frames / fps

    def stop(self) -> None:
        """Freeze the CPU and wall clocks (the load is over)."""
        self._cpu = time.process_time() - self._cpu0
        self._wall = time.monotonic() - self._wall0

    def to_json(self) -> dict[str, Any]:
        cpu = self._cpu if self._cpu is not None else time.process_time() - self._cpu0
        wall = self._wall if self._wall is not None else time.monotonic() - self._wall0
        return {"processes": 1, "cpu_seconds": [round(cpu, 3)], "wall_seconds": [round(wall, 3)],
                "ticks": self.ticks.to_json(), "lag": self.lag.to_json(), "packets_sent": self.packets_sent,
                "packets_received": self.packets_received, "channel_packets": self.channel_packets,
                "matches": self.matches,
                "slow_matches": self.slow_matches}


class LagMonitor:
    """A thread that wakes every MONITOR_SECONDS and records how late it woke (the full mode's
    loop lag: with many participant threads it measures the wait for the GIL and the cores)."""

    def __init__(self, check: SelfCheck) -> None:
        self.check = check
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadtest-lag-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        due = time.monotonic() + MONITOR_SECONDS
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            now = time.monotonic()
            self.check.lagged(now - due)
            due = max(due + MONITOR_SECONDS, now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


def merge(reports: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The processes' `SelfCheck.to_json()` reports added up (histograms exactly, CPU per process)."""
    ticks, lag = Histogram(), Histogram()
    out: dict[str, Any] = {"processes": 0, "cpu_seconds": [], "wall_seconds": [], "packets_sent": 0,
                           "packets_received": 0, "channel_packets": 0, "matches": 0, "slow_matches": 0}
    for report in reports:
        ticks.merge(Histogram.from_json(report["ticks"]))
        lag.merge(Histogram.from_json(report["lag"]))
        out["processes"] += report["processes"]
        out["cpu_seconds"] += report["cpu_seconds"]
        out["wall_seconds"] += report["wall_seconds"]
        for key in ("packets_sent", "packets_received", "channel_packets", "matches", "slow_matches"):
            out[key] += report.get(key, 0)
    out["ticks"], out["lag"] = ticks.to_json(), lag.to_json()
    return out


def verdict(merged: Mapping[str, Any], fps: int = 60) -> dict[str, Any]:
    """The generator's own figures for the summary, and whether it was the bottleneck (and why)."""
    frame_ms = 1000.0 / fps
    limit = LATE_LIMIT_FRAMES * frame_ms
    ticks, lag = Histogram.from_json(merged["ticks"]), Histogram.from_json(merged["lag"])
    cpu, wall = merged["cpu_seconds"], merged["wall_seconds"]
    shares = [c / w for c, w in zip(cpu, wall) if w > 0]
    packets = merged["packets_sent"] + merged["packets_received"]
    why = []
    late, lagging = ticks.percentile(99), lag.percentile(99)
    if late is not None and late > limit:
        why.append(f"its match ticks ran late: p99 {late:.1f} ms > {LATE_LIMIT_FRAMES} frames ({limit:.1f} ms)")
    if lagging is not None and lagging > limit:
        why.append(f"its event loop / threads lagged: p99 {lagging:.1f} ms > {LATE_LIMIT_FRAMES} frames "
                   f"({limit:.1f} ms)")
    if shares and max(shares) >= CPU_SATURATED:
        why.append(f"a generator process used {100 * max(shares):.0f}% of its core")
    elif why and shares:
        why.append(f"while using at most {100 * max(shares):.0f}% of a core per process: other processes on this "
                   "machine kept it off the CPU (rerun on a quiet machine)")
    return {
        "processes": merged["processes"],
        "cpu_seconds": round(sum(cpu), 3),
        "cpu_percent_per_process": [round(100 * s, 1) for s in shares],
        "cpu_us_per_packet": round(1e6 * sum(cpu) / packets, 1) if packets else None,
        "packets_sent": merged["packets_sent"], "packets_received": merged["packets_received"],
        "channel_packets": merged["channel_packets"],
        "tick_late_ms": ticks.summary(), "loop_lag_ms": lag.summary(),
        "matches": merged["matches"], "slow_matches": merged["slow_matches"],
        "bottleneck": bool(why), "why": why,
    }


# Failures a starved generator can cause (its participants answered late or not at all); any other
# failure (a desync, a match ended in error, a crash, a refused event) is a FAIL whatever the load.
LOAD_FAILURES = ("timeout", "disconnected", "seat taken over", "still running at --duration", "did not finish",
                 "not started before the stop",
                 "error: *: too many events")   # the rate limit, hit by a late generator's catch-up bursts


def overall_verdict(failure_reasons: Iterable[str], generator: Mapping[str, Any] | None) -> str:
    """PASS (nobody failed, the generator kept up); INCONCLUSIVE (the generator was the bottleneck, so the
    load asked for was not offered and nothing is said about the server, unless a failure that load cannot
    cause happened); FAIL otherwise."""
    reasons = list(failure_reasons)
    if any(not r.startswith(LOAD_FAILURES) for r in reasons):
        return "FAIL"
    if generator is not None and generator.get("bottleneck"):
        return "INCONCLUSIVE"
    return "FAIL" if reasons else "PASS"
