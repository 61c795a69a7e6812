"""The server's own metrics, on a prometheus_client registry of its own, and reading them back.

`Metrics` names every figure the server keeps; the Hub, the Flow and each MatchRoom are given one
(tests get a fresh one by default). Each `Metrics` has its own `CollectorRegistry`, not the library's
global one, so that several servers can run in one process. `render()` is the Prometheus text
exposition format 0.0.4 that `GET /metrics` serves; `parse_metrics` reads it back (tests, the load
tester).

Metrics are aggregate numbers only: no participant, match or session ids in labels.

The per-packet figures (relay time, bytes, events, packets by path) are tallied in plain Python
numbers on the relay's path and folded into their prometheus metrics when read (a scrape, `value`,
`relay_seconds`): prometheus_client takes a lock per increment, several per packet, which cost more
than the relay's own work under eventlet.
"""
from __future__ import annotations

import bisect
import math
import os
import resource
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LabelKey = tuple[tuple[str, str], ...]

# No `<name>_created` series next to every counter and histogram: /metrics shows what the server
# counts, and scrapers here only take deltas between two scrapes.
disable_created_metrics()


def _read(function: Callable[[], float]) -> float:
    """A callback's value, or NaN when it fails: a failing callback must not break the scrape."""
    try:
        return float(function())
    except Exception:
        return math.nan


class CallbackGauge(Gauge):
    """A Gauge whose `set_function` callback reads NaN when it raises, instead of failing the scrape."""

    def set_function(self, f: Callable[[], float]) -> None:
        super().set_function(lambda: _read(f))


class Callbacks:
    """A collector of unlabelled figures read from functions at every scrape, for counts kept elsewhere."""

    def __init__(self) -> None:
        self._figures: list[tuple[type[Metric], str, str, Callable[[], float]]] = []

    def counter(self, name: str, help: str, function: Callable[[], float]) -> None:
        self._figures.append((CounterMetricFamily, name, help, function))

    def gauge(self, name: str, help: str, function: Callable[[], float]) -> None:
        self._figures.append((GaugeMetricFamily, name, help, function))

    def collect(self) -> Iterator[Metric]:
        for family, name, help, function in self._figures:
            yield family(name, help, value=_read(function))  # type: ignore[call-arg]


class _Fold:
    """A collector with no figures of its own: collecting it folds a Metrics' tallies in."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        self.metrics.fold()
        return iter(())

    def describe(self) -> Iterator[Metric]:
        return iter(())


# ---------------------------------------------------------------- process figures

def process_cpu_seconds() -> float:
    """User + system CPU time of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_resident_bytes() -> float:
    """Resident memory now (VmRSS), or the peak where /proc is missing."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def process_open_fds() -> float:
    try:
        return float(len(os.listdir("/proc/self/fd")))
    except OSError:
        return math.nan


def histogram_count(histogram: Histogram) -> float:
    """How many observations an unlabelled histogram has counted."""
    return next(sample.value for family in histogram.collect() for sample in family.samples
                if sample.name.endswith("_count"))


# ---------------------------------------------------------------- the server's metrics

RELAY_BUCKETS = (50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3)
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60)
MAX_PENDING_ENTRIES = 10_000
EVENTS = ("advance", "ready", "packet", "episode_done", "client_error")
# Why a client message was refused (app/live/hub.py, app/web/socket_gate.py).
REFUSALS = ("rate_limited", "connect_rate", "invalid", "unknown_event", "malformed", "binary", "unconnected")
PACKET_PATHS = ("socketio", "channel")   # how a packet reached the server's relay
# How an attempt to open a match channel ended (app/live/hub.py).
CHANNEL_RESULTS = ("ok", "bad_ticket", "ticket_expired", "gone", "connect_rate")


class Metrics:
    """Every figure the server keeps, on its own registry. `clock` times durations."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, process: bool = True) -> None:
        self.clock = clock
        self.registry = r = CollectorRegistry()
        r.register(_Fold(self))   # first: every scrape folds the tallies in before the metrics are read
        callbacks = Callbacks()
        if process:
            callbacks.counter("coplay_process_cpu_seconds_total",
                              "User and system CPU time of the server process, seconds.", process_cpu_seconds)
            callbacks.gauge("coplay_process_resident_memory_bytes", "Resident memory of the server process, bytes.",
                            process_resident_bytes)
            callbacks.gauge("coplay_process_open_fds", "Open file descriptors of the server process.",
                            process_open_fds)
        self.participants_entered = Counter("coplay_participants_entered_total", "New participants who entered.",
                                            registry=r)
        self.participants_completed = Counter("coplay_participants_completed_total",
                                              "Participants who reached the end scene having completed the study.",
                                              registry=r)
        self.participant_outcomes = Counter("coplay_participant_outcomes_total",
                                            "Participants whose study ended early, by outcome.", ("outcome",),
                                            registry=r)
        self.sockets_connected = CallbackGauge("coplay_sockets_connected",
                                               "Participants with a socket connected now.", registry=r)
        self.socket_connects = Counter("coplay_socket_connects_total", "Socket.IO connections accepted.", registry=r)
        self.socket_disconnects = Counter("coplay_socket_disconnects_total", "Socket.IO disconnections.", registry=r)
        self.events = Counter("coplay_events_total", "Client socket events handled, by event.", ("event",),
                              registry=r)
        self.refused_events = Counter("coplay_refused_events_total", "Client socket events refused, by event.",
                                      ("event",), registry=r)
        self.refusals = Counter("coplay_refusals_total", "Client messages refused, by why (rate_limited, ...).",
                                ("why",), registry=r)
        self._relay_histogram = Histogram("coplay_relay_seconds",
                                       "Server time to validate, log and forward one packet, seconds.",
                                       buckets=RELAY_BUCKETS, registry=r)
        callbacks.counter("coplay_relayed_packets_total", "Netcode packets relayed to a seat.",
                          lambda: histogram_count(self._relay_histogram))
        self.relayed_bytes = Counter("coplay_relayed_bytes_total", "Characters of netcode packets relayed.",
                                     registry=r)
        self.packets_by_path = Counter("coplay_packets_received_total",
                                       "Netcode packets the relay accepted, by the path they came by.", ("path",),
                                       registry=r)
        self.channel_opens = Counter("coplay_channel_connections_total",
                                     "Match channel openings, by result (ok, bad_ticket, ...).", ("result",),
                                     registry=r)
        self.channel_batches = Counter("coplay_channel_batches_total",
                                       "Rounds of the match channel pump (one epoll wake-up, every ready socket "
                                       "read, relayed and written): packets relayed / batches is the mean batch.",
                                       registry=r)
        self.channels_open = CallbackGauge("coplay_channels_open", "Match channels open now.", registry=r)
        for path in PACKET_PATHS:
            self.packets_by_path.labels(path)
        self.matches_active = CallbackGauge("coplay_matches_active", "Matches running now.", registry=r)
        self.matches_started = Counter("coplay_matches_started_total", "Matches started.", registry=r)
        self.matches_ended = Counter("coplay_matches_ended_total", "Matches ended, by reason.", ("reason",),
                                     registry=r)
        self.desyncs = Counter("coplay_desyncs_total", "Checksum differences between seats (recorded desyncs).",
                               registry=r)
        self.seats_lost = Counter("coplay_seats_lost_total", "Human seats lost mid-match, by why.", ("why",),
                                  registry=r)
        self.waiting_seconds = Histogram("coplay_waiting_seconds", "Time from ready to match start, seconds.",
                                         buckets=WAIT_BUCKETS, registry=r)
        self.first_packet_seconds = Histogram(
            "coplay_first_packet_seconds",
            "Time from an episode's match_start to the first packet from each human seat, seconds.",
            buckets=START_BUCKETS, registry=r)
        self.connect_seconds = Histogram("coplay_connect_seconds",
                                         "Time from a participant's entry page to their first socket, seconds.",
                                         buckets=START_BUCKETS, registry=r)
        self.client_errors = Counter("coplay_client_errors_total", "Errors reported by participants' pages.",
                                     registry=r)
        # Admission control (app/live/admission.py); the Hub sets the gauges' functions.
        self.admission_open = CallbackGauge("coplay_admission_open",
                                            "1 while new matches may start, 0 while they wait (overload).", registry=r)
        self.admission_closes = Counter("coplay_admission_closes_total",
                                        "Times admission closed because the server lagged.", registry=r)
        self.admission_held_starts = Counter("coplay_admission_held_starts_total",
                                             "Match starts held in a waiting room while admission was closed.",
                                             registry=r)
        self.lag_seconds = CallbackGauge("coplay_lag_seconds",
                                         "Worst time a packet could spend in the server (event-loop lag plus "
                                         "relay time) over the last admission window, seconds.", ("part",),
                                         registry=r)
        r.register(callbacks)
        self._entered_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._relay_max = 0.0
        # Tallies since start (only ever grow) and how much of each is already in its prometheus metric.
        self._relay_counts = [0] * (len(RELAY_BUCKETS) + 1)
        self._relay_sum = 0.0
        self._relay_bytes = 0
        self._event_counts: dict[str, int] = {}   # in the order events were first seen, as the labels appear
        self._path_counts = dict.fromkeys(PACKET_PATHS, 0)
        self._folded: dict[str, float] = {}
        self._fold_lock = threading.Lock()

    @property
    def relay_seconds(self) -> Histogram:
        """The relay-time histogram, up to date."""
        self.fold()
        return self._relay_histogram

    def fold(self) -> None:
        """Move what the plain tallies counted since the last fold into the prometheus metrics."""
        with self._fold_lock:
            histogram: Any = self._relay_histogram
            for i, count in enumerate(list(self._relay_counts)):
                self._fold_one(f"relay{i}", count, histogram._buckets[i].inc)
            self._fold_one("relay_sum", self._relay_sum, histogram._sum.inc)
            self._fold_one("bytes", self._relay_bytes, self.relayed_bytes.inc)
            for name, count in list(self._event_counts.items()):
                self._fold_one(f"event {name}", count, self.events.labels(name).inc)
            for path, count in list(self._path_counts.items()):
                self._fold_one(f"path {path}", count, self.packets_by_path.labels(path).inc)

    def _fold_one(self, key: str, total: float, inc: Callable[[float], None]) -> None:
        delta = total - self._folded.get(key, 0)
        if delta:
            inc(delta)
            self._folded[key] = total

    def packet_relayed(self, path: str) -> None:
        """A `packet` the relay accepted, by the path it came by (one of PACKET_PATHS): as `event("packet")`
        plus a count by path, in one call per packet."""
        counts = self._event_counts
        counts["packet"] = counts.get("packet", 0) + 1
        self._path_counts[path] += 1

    def entered(self, participant: str) -> None:
        """A new participant entered (their page loads next; `connected` times the gap)."""
        self.participants_entered.inc()
        with self._lock:
            if len(self._entered_at) >= MAX_PENDING_ENTRIES:
                self._entered_at.pop(next(iter(self._entered_at)))
            self._entered_at[participant] = self.clock()

    def connected(self, participant: str) -> None:
        self.socket_connects.inc()
        with self._lock:
            entered_at = self._entered_at.pop(participant, None)
        if entered_at is not None:
            self.connect_seconds.observe(self.clock() - entered_at)

    def event(self, event: str, refused: bool = False) -> None:
        name = event if event in EVENTS else "other"  # bounded label values, whatever clients send
        self._event_counts[name] = self._event_counts.get(name, 0) + 1
        if refused:
            self.refused_events.labels(name).inc()

    def refused(self, why: str) -> None:
        """A client message (or connection) refused, `why` being one of REFUSALS."""
        self.refusals.labels(why if why in REFUSALS else "other").inc()

    def relayed(self, chars: int, started: float) -> None:
        """One packet forwarded, `started` being `clock()` when its relay began."""
        elapsed = self.clock() - started
        self._relay_counts[bisect.bisect_left(RELAY_BUCKETS, elapsed)] += 1
        self._relay_sum += elapsed
        self._relay_bytes += chars
        if elapsed > self._relay_max:
            self._relay_max = elapsed

    def take_relay_max(self) -> float:
        """The longest relay (seconds) since the previous call: the admission probe's relay figure."""
        longest, self._relay_max = self._relay_max, 0.0
        return longest

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value as /metrics shows it (e.g. `coplay_relay_seconds_count`); None when absent."""
        return self.registry.get_sample_value(name, labels)

    def render(self) -> str:
        """Every metric in the Prometheus text format 0.0.4."""
        return generate_latest(self.registry).decode()


# ---------------------------------------------------------------- reading it back

def parse_metrics(text: str) -> dict[tuple[str, LabelKey], float]:
    """Samples of a Prometheus text exposition, keyed by (name, sorted label pairs).

    Raises ValueError on a line that is not a comment, blank or a sample.
    """
    return {(sample.name, tuple(sorted(sample.labels.items()))): float(sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples}


def histogram_buckets(samples: dict[tuple[str, LabelKey], float], name: str) -> list[tuple[float, float]]:
    """The (upper bound, cumulative count) buckets of histogram `name`, +Inf last."""
    buckets = [(float(dict(labels)["le"]), value) for (sample, labels), value in samples.items()
               if sample == f"{name}_bucket"]
    return sorted(buckets)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Estimate quantile `q` from cumulative buckets as Prometheus does (linear within a bucket)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] == 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return buckets[-1][0]
