"""The server's metrics (app/live/metrics.py, on prometheus_client): text format, parsing back, process figures."""
from __future__ import annotations

import math

import pytest
from prometheus_client import Counter

from app.live.metrics import (
    Metrics, histogram_buckets, histogram_quantile, parse_metrics, process_cpu_seconds, process_open_fds,
    process_resident_bytes,
)


def small_metrics() -> Metrics:
    metrics = Metrics(clock=lambda: 0.0, process=False)
    metrics.event("packet")
    metrics.event("packet")
    metrics.event("ready", refused=True)
    metrics.seats_lost.labels('we"ird\\one\n').inc()
    metrics.relayed_bytes.inc(0.5)
    metrics.matches_active.set_function(lambda: 7.25)
    for value in (0.03, 0.05, 0.3, 200.0):
        metrics.waiting_seconds.observe(value)
    return metrics


# Blocks of the exposition, in the order they appear: HELP and TYPE, escaped label values, cumulative
# buckets with +Inf last, sum and count.
EXPECTED = ["""\
# HELP coplay_events_total Client socket events handled, by event.
# TYPE coplay_events_total counter
coplay_events_total{event="packet"} 2.0
coplay_events_total{event="ready"} 1.0
""", """\
# TYPE coplay_refused_events_total counter
coplay_refused_events_total{event="ready"} 1.0
""", """\
coplay_relayed_bytes_total 0.5
# HELP coplay_packets_received_total Netcode packets the relay accepted, by the path they came by.
# TYPE coplay_packets_received_total counter
coplay_packets_received_total{path="socketio"} 0.0
coplay_packets_received_total{path="channel"} 0.0
""", """\
coplay_channels_open 0.0
# HELP coplay_matches_active Matches running now.
# TYPE coplay_matches_active gauge
coplay_matches_active 7.25
""", """\
coplay_seats_lost_total{why="we\\"ird\\\\one\\n"} 1.0
""", """\
# HELP coplay_waiting_seconds Time from ready to match start, seconds.
# TYPE coplay_waiting_seconds histogram
coplay_waiting_seconds_bucket{le="0.1"} 2.0
coplay_waiting_seconds_bucket{le="0.5"} 3.0
coplay_waiting_seconds_bucket{le="1.0"} 3.0
""", """\
coplay_waiting_seconds_bucket{le="600.0"} 4.0
coplay_waiting_seconds_bucket{le="+Inf"} 4.0
coplay_waiting_seconds_count 4.0
coplay_waiting_seconds_sum 200.38
"""]


def test_text_format_is_pinned() -> None:
    text = small_metrics().render()
    positions = [text.find(block) for block in EXPECTED]
    assert -1 not in positions, [block for block, at in zip(EXPECTED, positions) if at == -1]
    assert positions == sorted(positions)
    assert "_created" not in text   # only what the server counts


def test_parse_reads_back_labels_with_escapes_and_inf() -> None:
    samples = parse_metrics(small_metrics().render())
    assert samples[("coplay_events_total", (("event", "packet"),))] == 2
    assert samples[("coplay_seats_lost_total", (("why", 'we"ird\\one\n'),))] == 1
    assert samples[("coplay_relayed_bytes_total", ())] == 0.5
    assert samples[("coplay_matches_active", ())] == 7.25
    assert samples[("coplay_waiting_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("coplay_waiting_seconds_count", ())] == 4
    assert histogram_buckets(samples, "coplay_waiting_seconds")[:3] == [(0.1, 2), (0.5, 3), (1.0, 3)]
    assert histogram_buckets(samples, "coplay_waiting_seconds")[-1] == (math.inf, 4)


def test_parse_rejects_garbage_and_takes_timestamps() -> None:
    assert parse_metrics('x{a="1",b="2"} 5 1700000000000\n') == {("x", (("a", "1"), ("b", "2"))): 5.0}
    with pytest.raises(ValueError):
        parse_metrics("not a sample line at all\n")
    with pytest.raises(ValueError):
        parse_metrics('x{a=1} 5\n')


def test_counters_only_go_up_and_labels_must_match() -> None:
    metrics = Metrics(process=False)
    with pytest.raises(ValueError):
        metrics.matches_ended.inc()
    with pytest.raises(ValueError):
        metrics.matches_ended.labels("a").inc(-1)
    with pytest.raises(ValueError):
        Counter("coplay_matches_ended_total", "again", registry=metrics.registry)


def test_each_server_has_its_own_registry() -> None:
    first, second = Metrics(process=False), Metrics(process=False)
    first.matches_started.inc()
    assert first.value("coplay_matches_started_total") == 1
    assert second.value("coplay_matches_started_total") == 0


def test_a_relayed_packet_counts_as_a_packet_event_and_by_its_path() -> None:
    metrics = Metrics(process=False)
    metrics.packet_relayed("channel")
    metrics.packet_relayed("channel")
    metrics.packet_relayed("socketio")
    metrics.event("packet", refused=True)
    assert metrics.value("coplay_packets_received_total", path="channel") == 2
    assert metrics.value("coplay_packets_received_total", path="socketio") == 1
    assert metrics.value("coplay_events_total", event="packet") == 4
    assert metrics.value("coplay_refused_events_total", event="packet") == 1


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert math.isnan(histogram_quantile(0.5, [(math.inf, 0.0)]))
    assert histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 100.0)]) == 0.1  # above the last finite bound


def test_failing_gauge_callback_does_not_break_the_scrape() -> None:
    metrics = Metrics(process=False)
    metrics.sockets_connected.set_function(lambda: 1 / 0)
    assert "coplay_sockets_connected NaN" in metrics.render()


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

