"""The Prometheus registry (app/live/metrics.py): text format, parsing back, process figures."""
from __future__ import annotations

import math

import pytest

from app.live.metrics import (
    Metrics, Registry, histogram_buckets, histogram_quantile, parse_metrics, process_cpu_seconds,
    process_open_fds, process_resident_bytes,
)


def small_registry() -> Registry:
    registry = Registry()
    events = registry.counter("demo_events_total", "Events by kind.\nSecond line \\ here.", ("event",))
    events.inc("packet")
    events.inc("packet", amount=2)
    events.inc('we"ird\\one\n')
    plain = registry.counter("demo_plain_total", "A counter without labels.")
    plain.inc(amount=0.5)
    gauge = registry.gauge("demo_level", "A gauge.")
    gauge.set(3)
    gauge.dec()
    registry.gauge("demo_callback", "Read at scrape time.", lambda: 7.25)
    histogram = registry.histogram("demo_seconds", "A histogram.", (0.1, 1, 0.5))
    for value in (0.05, 0.1, 0.3, 2.0):
        histogram.observe(value)
    return registry


EXPECTED = """\
# HELP demo_events_total Events by kind.\\nSecond line \\\\ here.
# TYPE demo_events_total counter
demo_events_total{event="packet"} 3
demo_events_total{event="we\\"ird\\\\one\\n"} 1
# HELP demo_plain_total A counter without labels.
# TYPE demo_plain_total counter
demo_plain_total 0.5
# HELP demo_level A gauge.
# TYPE demo_level gauge
demo_level 2
# HELP demo_callback Read at scrape time.
# TYPE demo_callback gauge
demo_callback 7.25
# HELP demo_seconds A histogram.
# TYPE demo_seconds histogram
demo_seconds_bucket{le="0.1"} 2
demo_seconds_bucket{le="0.5"} 3
demo_seconds_bucket{le="1"} 3
demo_seconds_bucket{le="+Inf"} 4
demo_seconds_sum 2.45
demo_seconds_count 4
"""


def test_text_format_is_pinned() -> None:
    assert small_registry().render() == EXPECTED


def test_parse_reads_back_labels_with_escapes_and_inf() -> None:
    samples = parse_metrics(small_registry().render())
    assert samples[("demo_events_total", (("event", "packet"),))] == 3
    assert samples[("demo_events_total", (("event", 'we"ird\\one\n'),))] == 1
    assert samples[("demo_plain_total", ())] == 0.5
    assert samples[("demo_callback", ())] == 7.25
    assert samples[("demo_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("demo_seconds_count", ())] == 4
    assert histogram_buckets(samples, "demo_seconds") == [(0.1, 2), (0.5, 3), (1.0, 3), (math.inf, 4)]


def test_parse_rejects_garbage_and_takes_timestamps() -> None:
    assert parse_metrics('x{a="1",b="2"} 5 1700000000000\n') == {("x", (("a", "1"), ("b", "2"))): 5.0}
    with pytest.raises(ValueError):
        parse_metrics("not a sample line at all\n")
    with pytest.raises(ValueError):
        parse_metrics('x{a=1} 5\n')


def test_counters_only_go_up_and_labels_must_match() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "c", ("kind",))
    with pytest.raises(ValueError):
        counter.inc()
    with pytest.raises(ValueError):
        counter.inc("a", amount=-1)
    with pytest.raises(ValueError):
        registry.counter("c_total", "again")


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert math.isnan(histogram_quantile(0.5, [(math.inf, 0.0)]))
    assert histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 100.0)]) == 0.1  # above the last finite bound


def test_failing_gauge_callback_does_not_break_the_scrape() -> None:
    registry = Registry()
    registry.gauge("broken", "raises", lambda: 1 / 0)
    assert "broken NaN" in registry.render()


def test_process_figures_are_plausible() -> None:
    assert process_cpu_seconds() > 0
    assert process_resident_bytes() > 1_000_000
    assert process_open_fds() >= 3


def test_server_metrics_have_the_names_the_load_tester_reads() -> None:
    ticks = iter(range(100))
    metrics = Metrics(clock=lambda: float(next(ticks)))
    metrics.entered("p1")
    metrics.connected("p1")
    metrics.connected("p1")  # a reconnect is not timed again
    metrics.event("packet")
    metrics.event("bogus", refused=True)
    metrics.relayed(120, metrics.clock())
    samples = parse_metrics(metrics.render())
    names = {name for name, _ in samples}
    for name in ("coplay_process_cpu_seconds_total", "coplay_process_resident_memory_bytes", "coplay_process_open_fds",
                 "coplay_participants_entered_total", "coplay_participants_completed_total",
                 "coplay_sockets_connected", "coplay_socket_connects_total", "coplay_socket_disconnects_total",
                 "coplay_relayed_packets_total", "coplay_relayed_bytes_total", "coplay_relay_seconds_count",
                 "coplay_matches_active", "coplay_matches_started_total", "coplay_desyncs_total",
                 "coplay_waiting_seconds_count", "coplay_first_packet_seconds_count", "coplay_connect_seconds_count",
                 "coplay_client_errors_total"):
        assert name in names, name
    assert samples[("coplay_connect_seconds_count", ())] == 1
    assert samples[("coplay_connect_seconds_sum", ())] == 1
    assert samples[("coplay_socket_connects_total", ())] == 2
    assert samples[("coplay_events_total", (("event", "other"),))] == 1
    assert samples[("coplay_refused_events_total", (("event", "other"),))] == 1
    assert samples[("coplay_relayed_packets_total", ())] == 1
    assert samples[("coplay_relayed_bytes_total", ())] == 120
    assert samples[("coplay_relay_seconds_count", ())] == 1

