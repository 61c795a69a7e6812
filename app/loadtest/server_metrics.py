"""The server's own figures during a load test, scraped from its Prometheus `/metrics` endpoint.

Read (by `app.live.metrics.parse_metrics`, i.e. `prometheus_client.parser`) about once a second by the parent process:
process CPU seconds and resident memory, packets relayed, the relay-time histogram and
Socket.IO disconnects. The summary reports deltas over the run. A server without the
endpoint (HTTP 404, or none reachable) gives `server: null` and a note, never a crash.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping

import requests

from app.live.metrics import histogram_buckets, histogram_quantile, parse_metrics
from game.errors import CoplayError

MetricKey = tuple[str, tuple[tuple[str, str], ...]]
Metrics = Mapping[MetricKey, float]

CPU = "coplay_process_cpu_seconds_total"
RSS = "coplay_process_resident_memory_bytes"
RELAYED = "coplay_relayed_packets_total"
RELAY = "coplay_relay_seconds"
RELAY_COUNT = "coplay_relay_seconds_count"
RELAY_SUM = "coplay_relay_seconds_sum"
DISCONNECTS = "coplay_socket_disconnects_total"


class MetricsUnavailable(CoplayError):
    """The endpoint is missing or unreadable; the message says why."""

    code = "metrics_unavailable"


def fetch_metrics(url: str, timeout: float = 2.0) -> Metrics:
    """GET URL/metrics and parse it; MetricsUnavailable when that is not possible."""
    try:
        response = requests.get(url.rstrip("/") + "/metrics", timeout=timeout)
    except requests.RequestException as error:
        raise MetricsUnavailable(f"GET /metrics failed: {error}") from None
    if response.status_code != 200:
        raise MetricsUnavailable(f"GET /metrics answered HTTP {response.status_code}")
    try:
        return parse_metrics(response.text)
    except ValueError as error:
        raise MetricsUnavailable(f"/metrics is not in the Prometheus text format: {error}") from None


def total(metrics: Metrics, name: str) -> float | None:
    """The sum of a metric over all its label sets; None when absent."""
    values = [v for (n, _), v in metrics.items() if n == name]
    return sum(values) if values else None


def relay_quantile(before: Metrics, after: Metrics, q: float) -> float | None:
    """Quantile q (0..1) of the relay times observed between two scrapes, in seconds, estimated
    from the `coplay_relay_seconds` bucket deltas; None when nothing was relayed."""
    earlier = dict(histogram_buckets(dict(before), RELAY))
    delta = [(bound, count - earlier.get(bound, 0.0)) for bound, count in histogram_buckets(dict(after), RELAY)]
    value = histogram_quantile(q, delta)
    return None if math.isnan(value) else round(value, 6)


class ServerMetrics:
    """Scrapes `fetch()` on demand; `sample()` for the timeline, `summary()` at the end."""

    def __init__(self, url: str, fetch: Callable[[], Metrics] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch = fetch or (lambda: fetch_metrics(url))
        self.clock = clock
        self.note: str | None = None
        self.disabled = False
        self.first: tuple[float, Metrics] | None = None
        self.last: tuple[float, Metrics] | None = None
        self.cpu_percents: list[float] = []
        self.rss_max: float | None = None

    def sample(self) -> dict[str, float | None]:
        """Scrape once: {cpu_percent (since the previous scrape), rss_bytes}; Nones when unavailable."""
        empty: dict[str, float | None] = {"cpu_percent": None, "rss_bytes": None}
        if self.disabled:
            return empty
        try:
            metrics = self.fetch()
        except MetricsUnavailable as error:
            self.note = str(error)
            if self.first is None:
                self.disabled = True   # no endpoint: do not ask again every second
            return empty
        now = self.clock()
        cpu_percent = None
        if self.last is not None:
            before, after = total(self.last[1], CPU), total(metrics, CPU)
            if before is not None and after is not None and now > self.last[0]:
                cpu_percent = round(100 * (after - before) / (now - self.last[0]), 1)
                self.cpu_percents.append(cpu_percent)
        rss = total(metrics, RSS)
        if rss is not None:
            self.rss_max = rss if self.rss_max is None else max(self.rss_max, rss)
        if self.first is None:
            self.first = (now, metrics)
        self.last = (now, metrics)
        return {"cpu_percent": cpu_percent, "rss_bytes": rss}

    def summary(self) -> dict[str, Any] | None:
        """Figures over the run (between the first and the last scrape); None when there were none."""
        if self.first is None or self.last is None:
            return None
        (t0, a), (t1, b) = self.first, self.last

        def delta(name: str) -> float | None:
            x, y = total(a, name), total(b, name)
            return None if x is None or y is None else y - x

        cpu, relayed = delta(CPU), delta(RELAYED)
        count, seconds = delta(RELAY_COUNT), delta(RELAY_SUM)
        return {
            "seconds": round(t1 - t0, 3),
            "cpu_seconds": None if cpu is None else round(cpu, 3),
            "cpu_percent_mean": round(100 * cpu / (t1 - t0), 1) if cpu is not None and t1 > t0 else None,
            "cpu_percent_max": max(self.cpu_percents) if self.cpu_percents else None,
            "rss_bytes_max": self.rss_max,
            "relayed_packets": relayed,
            "cpu_us_per_relayed_packet": round(cpu * 1e6 / relayed, 1) if cpu is not None and relayed else None,
            "relay_seconds_mean": round(seconds / count, 6) if seconds is not None and count else None,
            "relay_seconds_p99": relay_quantile(a, b, 0.99),
            "socket_disconnects": delta(DISCONNECTS),
        }
