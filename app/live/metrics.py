"""A tiny, thread-safe Prometheus registry, and the server's own metrics.

No I/O and no third-party dependency: `Registry.render()` returns the Prometheus text
exposition format 0.0.4 that `GET /metrics` serves, and `parse_metrics` reads it back
(tests, the load tester). `Metrics` names every figure the server keeps; the Hub, the
Flow and each MatchRoom are given one (tests get a fresh one by default).

Metrics are aggregate numbers only: no participant, match or session ids in labels.
"""
from __future__ import annotations

import bisect
import math
import os
import re
import resource
import threading
import time
from typing import Callable, Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LabelKey = tuple[tuple[str, str], ...]


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs) + "}"


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, values: Sequence[str]) -> tuple[str, ...]:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(values)}")
        return tuple(str(v) for v in values)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A number that only goes up; one per combination of label values, or (unlabelled)
    a callback read at every scrape, for a count kept elsewhere."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (),
                 function: Callable[[], float] | None = None) -> None:
        super().__init__(name, help, labelnames)
        if function is not None and labelnames:
            raise ValueError("a counter read from a callback has no labels")
        self._values: dict[tuple[str, ...], float] = {} if labelnames else {(): 0.0}
        self._function = function

    def inc(self, *labelvalues: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = labelvalues if labelvalues else ()
        with self._lock:
            if key not in self._values:
                key = self._key(labelvalues)
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labelvalues: str) -> float:
        if self._function is not None:
            return float(self._function())
        with self._lock:
            return self._values.get(tuple(labelvalues), 0.0)

    def samples(self) -> list[str]:
        if self._function is not None:
            return [f"{self.name} {_fmt(self.value())}"]
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(list(zip(self.labelnames, key)))} {_fmt(v)}" for key, v in items]


class Gauge(_Metric):
    """A number that goes up and down, or a callback read at every scrape."""

    kind = "gauge"

    def __init__(self, name: str, help: str, function: Callable[[], float] | None = None) -> None:
        super().__init__(name, help)
        self._value = 0.0
        self._function = function

    def set(self, value: float) -> None:
        with self._lock:
            self._value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    def set_function(self, function: Callable[[], float]) -> None:
        self._function = function

    def value(self) -> float:
        if self._function is not None:
            return float(self._function())
        with self._lock:
            return self._value

    def samples(self) -> list[str]:
        try:
            value = self.value()
        except Exception:  # a failing callback must not break the scrape
            value = math.nan
        return [f"{self.name} {_fmt(value)}"]


class Histogram(_Metric):
    """Observations counted into fixed cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help)
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds:
            raise ValueError("a histogram needs at least one finite bucket")
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value
            self._count += 1

    def observe_and_add(self, value: float, other: list[float], amount: float) -> None:
        """`observe(value)` and `other[0] += amount` under one lock (the relay's hot path)."""
        index = bisect.bisect_left(self.bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value
            self._count += 1
            other[0] += amount

    @property
    def count(self) -> int:
        return self._count

    def samples(self) -> list[str]:
        with self._lock:
            counts, total, count = list(self._counts), self._sum, self._count
        lines, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), counts):
            running += n
            lines.append(f'{self.name}_bucket{{le="{_fmt(bound)}"}} {running}')
        lines.append(f"{self.name}_sum {_fmt(total)}")
        lines.append(f"{self.name}_count {count}")
        return lines


class Registry:
    """Metrics in the order they were made, rendered together."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _add(self, metric: _Metric) -> _Metric:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is already registered")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = (),
                function: Callable[[], float] | None = None) -> Counter:
        return self._add(Counter(name, help, labelnames, function))  # type: ignore[return-value]

    def gauge(self, name: str, help: str, function: Callable[[], float] | None = None) -> Gauge:
        return self._add(Gauge(name, help, function))  # type: ignore[return-value]

    def histogram(self, name: str, help: str, buckets: Sequence[float]) -> Histogram:
        return self._add(Histogram(name, help, buckets))  # type: ignore[return-value]

    def render(self) -> str:
        """Every metric in the Prometheus text format 0.0.4."""
        with self._lock:
            metrics = list(self._metrics.values())
        lines: list[str] = []
        for metric in metrics:
            lines += metric.header()
            lines += metric.samples()
        return "\n".join(lines) + "\n"


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


# ---------------------------------------------------------------- the server's metrics

RELAY_BUCKETS = (50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3)
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60)
MAX_PENDING_ENTRIES = 10_000
EVENTS = ("advance", "ready", "packet", "episode_done", "client_error")


class Metrics:
    """Every figure the server keeps, on its own registry. `clock` times durations."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, process: bool = True) -> None:
        self.clock = clock
        self.registry = r = Registry()
        if process:
            r.counter("coplay_process_cpu_seconds_total", "User and system CPU time of the server process, seconds.",
                      function=process_cpu_seconds)
            r.gauge("coplay_process_resident_memory_bytes", "Resident memory of the server process, bytes.",
                    process_resident_bytes)
            r.gauge("coplay_process_open_fds", "Open file descriptors of the server process.", process_open_fds)
        self.participants_entered = r.counter("coplay_participants_entered_total", "New participants who entered.")
        self.participants_completed = r.counter("coplay_participants_completed_total",
                                                "Participants who reached the end scene having completed the study.")
        self.participant_outcomes = r.counter("coplay_participant_outcomes_total",
                                              "Participants whose study ended early, by outcome.", ("outcome",))
        self.sockets_connected = r.gauge("coplay_sockets_connected", "Participants with a socket connected now.")
        self.socket_connects = r.counter("coplay_socket_connects_total", "Socket.IO connections accepted.")
        self.socket_disconnects = r.counter("coplay_socket_disconnects_total", "Socket.IO disconnections.")
        self.events = r.counter("coplay_events_total", "Client socket events handled, by event.", ("event",))
        self.refused_events = r.counter("coplay_refused_events_total", "Client socket events refused, by event.",
                                        ("event",))
        self.relay_seconds = r.histogram("coplay_relay_seconds",
                                         "Server time to validate, log and forward one packet, seconds.", RELAY_BUCKETS)
        self._relayed_chars = [0.0]
        self.relayed_packets = r.counter("coplay_relayed_packets_total", "Netcode packets relayed to a seat.",
                                         function=lambda: self.relay_seconds.count)
        self.relayed_bytes = r.counter("coplay_relayed_bytes_total", "Characters of netcode packets relayed.",
                                       function=lambda: self._relayed_chars[0])
        self.matches_active = r.gauge("coplay_matches_active", "Matches running now.")
        self.matches_started = r.counter("coplay_matches_started_total", "Matches started.")
        self.matches_ended = r.counter("coplay_matches_ended_total", "Matches ended, by reason.", ("reason",))
        self.desyncs = r.counter("coplay_desyncs_total", "Checksum differences between seats (recorded desyncs).")
        self.seats_lost = r.counter("coplay_seats_lost_total", "Human seats lost mid-match, by why.", ("why",))
        self.waiting_seconds = r.histogram("coplay_waiting_seconds", "Time from ready to match start, seconds.",
                                           WAIT_BUCKETS)
        self.first_packet_seconds = r.histogram(
            "coplay_first_packet_seconds",
            "Time from an episode's match_start to the first packet from each human seat, seconds.", START_BUCKETS)
        self.connect_seconds = r.histogram("coplay_connect_seconds",
                                           "Time from a participant's entry page to their first socket, seconds.",
                                           START_BUCKETS)
        self.client_errors = r.counter("coplay_client_errors_total", "Errors reported by participants' pages.")
        self._entered_at: dict[str, float] = {}
        self._lock = threading.Lock()

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
        self.events.inc(name)
        if refused:
            self.refused_events.inc(name)

    def relayed(self, chars: int, started: float) -> None:
        """One packet forwarded, `started` being `clock()` when its relay began."""
        self.relay_seconds.observe_and_add(self.clock() - started, self._relayed_chars, chars)

    def render(self) -> str:
        return self.registry.render()


# ---------------------------------------------------------------- reading it back

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_metrics(text: str) -> dict[tuple[str, LabelKey], float]:
    """Samples of a Prometheus text exposition, keyed by (name, sorted label pairs).

    Raises ValueError on a line that is not a comment, blank or a sample.
    """
    samples: dict[tuple[str, LabelKey], float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"line {number} is not a Prometheus sample: {line!r:.80}")
        name, body, value = match.groups()
        labels: dict[str, str] = {}
        if body:
            position = 0
            while position < len(body):
                label = _LABEL.match(body, position)
                if label is None:
                    raise ValueError(f"line {number} has malformed labels: {line!r:.80}")
                labels[label.group(1)] = _unescape(label.group(2))
                position = label.end()
        samples[(name, tuple(sorted(labels.items())))] = float(value)
    return samples


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
