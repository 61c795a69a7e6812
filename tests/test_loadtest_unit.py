"""The load tester's parts without a server: arrival schedules, the link shaper on a fake clock,
summary figures and server-metrics arithmetic."""
from __future__ import annotations

import statistics

import pytest

from app.cli import main
from app.participant.result import SEAT_TAKEN_OVER, ParticipantResult
from app.participant.link import LinkShaper, ShapedLink
from app.loadtest.arrival import Arrival, arrival_offsets, parse_arrival
from app.loadtest.run import LoadtestPlan
from app.loadtest.server_metrics import MetricsUnavailable, ServerMetrics
from app.loadtest.summary import distribution, failure_reason, format_summary, result_from_json, summarise
from app.live.metrics import parse_metrics
from game.rng import Rng
from netcode.sim import PROFILES, NetworkProfile


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------------------- arrival


def test_arrival_parsing() -> None:
    assert parse_arrival("burst") == Arrival("burst")
    assert parse_arrival("ramp:30") == Arrival("ramp", 30.0)
    assert parse_arrival("poisson:2.5") == Arrival("poisson", 2.5)
    assert str(parse_arrival("ramp:30")) == "ramp:30" and str(parse_arrival("burst")) == "burst"


@pytest.mark.parametrize("text, message", [
    ("trickle", "must be burst, ramp:SECONDS or poisson:RATE"),
    ("ramp", "needs a value, e.g. ramp:30"),
    ("poisson:", "needs a value"),
    ("ramp:-1", "must be >= 0"),
    ("poisson:0", "must be > 0"),
    ("poisson:fast", "is not a number"),
    ("ramp:inf", "not a finite number"),
    ("burst:3", "takes no value"),
])
def test_arrival_parsing_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_arrival(text)


def test_bad_arrival_exits_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loadtest", "http://127.0.0.1:5000", "--arrival", "poisson:0"]) == 2
    assert "rate" in capsys.readouterr().err
    assert main(["loadtest", "http://127.0.0.1:5000", "--arrival", "burst", "--ramp", "3"]) == 2
    assert main(["loadtest", "http://127.0.0.1:5000", "--duration", "0"]) == 2
    assert main(["loadtest", "http://127.0.0.1:5000", "--drop-fraction", "1.5"]) == 2


def test_burst_and_ramp_schedules() -> None:
    assert arrival_offsets(Arrival("burst"), 5) == [0.0] * 5
    assert arrival_offsets(Arrival("ramp", 10.0), 5) == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert arrival_offsets(Arrival("ramp", 10.0), 1) == [0.0]


def test_poisson_schedule_is_seeded_with_mean_gap_one_over_rate() -> None:
    offsets = arrival_offsets(Arrival("poisson", 4.0), 4000, seed=7)
    assert offsets == arrival_offsets(Arrival("poisson", 4.0), 4000, seed=7)
    assert offsets != arrival_offsets(Arrival("poisson", 4.0), 4000, seed=8)
    assert offsets[0] == 0.0 and offsets == sorted(offsets)
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
    assert statistics.fmean(gaps) == pytest.approx(0.25, rel=0.06)


def test_drop_fraction_picks_participants_by_seed() -> None:
    plan = LoadtestPlan(url="http://127.0.0.1:5000", participants=20, seed=3, drop_fraction=0.1)
    droppers = [s.index for s in plan.specs("t") if s.drop_at_frame is not None]
    assert len(droppers) == 2 and droppers == [s.index for s in plan.specs("u") if s.drop_at_frame is not None]
    assert len({s.pid for s in plan.specs("t")}) == 20


# ----------------------------------------------------------------------------- link shaper


def test_shaper_delays_by_the_profile_latency() -> None:
    clock = FakeClock()
    shaper: LinkShaper[int] = LinkShaper(NetworkProfile("t", latency_ms=50, jitter_ms=0), Rng(1), clock)
    shaper.push(1)
    assert shaper.due() == [] and shaper.next_due() == pytest.approx(100.05)
    clock.now += 0.049
    assert shaper.due() == []
    clock.now += 0.002
    assert shaper.due() == [1] and shaper.next_due() is None


def test_shaper_keeps_order_without_jitter_or_reordering() -> None:
    clock = FakeClock()
    shaper: LinkShaper[int] = LinkShaper(NetworkProfile("t", latency_ms=20, jitter_ms=0), Rng(2), clock)
    for i in range(50):
        shaper.push(i)
        clock.now += 0.001
    clock.now += 1
    assert shaper.due() == list(range(50))


def test_shaper_reorders_loses_and_duplicates_at_the_profile_rates() -> None:
    clock = FakeClock()
    profile = NetworkProfile("t", latency_ms=30, jitter_ms=0, loss=0.1, duplicate=0.05, reorder=0.2)
    shaper: LinkShaper[int] = LinkShaper(profile, Rng(3), clock)
    for i in range(10_000):
        shaper.push(i)
        clock.now += 0.001
    clock.now += 10
    out = shaper.due()
    assert shaper.dropped == pytest.approx(1000, abs=150)
    assert shaper.duplicated == pytest.approx(450, abs=100)   # 5% of the 90% not lost
    assert len(out) == 10_000 - shaper.dropped + shaper.duplicated == shaper.delivered
    overtaken = sum(1 for a, b in zip(out, out[1:]) if b < a)
    assert overtaken > 500   # reordered packets arrive after later ones


def test_shaped_link_uses_the_named_profile_and_separate_rngs() -> None:
    clock = FakeClock()
    link = ShapedLink("wifi", seed=5, clock=clock)
    assert link.profile is PROFILES["wifi"]
    assert link.outgoing.rng.random() != link.incoming.rng.random()
    link.outgoing.push("a")
    link.incoming.push("b")
    clock.now += 1
    assert link.next_due() is not None
    assert link.outgoing.due() + link.incoming.due() in (["a", "b"], ["a"], ["b"], [])
    with pytest.raises(ValueError, match="unknown network profile"):
        ShapedLink("dialup", seed=1)


# ----------------------------------------------------------------------------- summary


def test_distribution_percentiles() -> None:
    d = distribution([float(x) for x in range(1, 101)])
    assert d["samples"] == 100 and d["max"] == 100 and d["mean"] == 50.5
    assert d["p50"] == pytest.approx(50.5) and d["p95"] == pytest.approx(95.05) and d["p99"] == pytest.approx(99.01)
    assert distribution([]) == {"mean": None, "p50": None, "p95": None, "p99": None, "max": None, "samples": 0}


def test_summary_rates_and_samples() -> None:
    a = ParticipantResult(completed=True, reason="completed", relay_rtt_ms=[10.0, 20.0, 30.0],
                          stats={"frames": 600, "rollbacks": 12, "stalls": 3, "max_rollback_depth": 4,
                                 "play_ms": 10_000})
    b = ParticipantResult(completed=True, reason="completed", relay_rtt_ms=[40.0],
                          stats={"frames": 400, "rollbacks": 8, "stalls": 1, "max_rollback_depth": 7,
                                 "play_ms": 5_000})
    summary = summarise("http://127.0.0.1:5000", [a, result_from_json(b.to_json())], 12.0,
                        {"server": None, "timeline": []})
    assert summary["frames"] == 1000 and summary["rollbacks_per_100_frames"] == 2.0
    assert summary["max_rollback_depth"] == 7
    assert summary["stalls_per_minute"] == pytest.approx(16.0)   # 4 stalls in 15 s of play
    assert summary["relay_rtt_ms"]["samples"] == 4 and summary["relay_rtt_ms"]["max"] == 40.0
    assert summary["samples"]["relay_rtt_ms"] == [10.0, 20.0, 30.0, 40.0]
    assert summary["server"] is None and summary["timeline"] == []


def test_a_match_ended_in_error_or_a_seat_taken_over_fails_the_participant() -> None:
    def finished(*reasons: str | None) -> ParticipantResult:
        return ParticipantResult(completed=True, reason="completed",
                                 matches=[{"match": f"m{i}", "reason": r} for i, r in enumerate(reasons)])

    clean, errored, taken = finished("completed"), finished("completed", "error"), finished(SEAT_TAKEN_OVER)
    assert failure_reason(clean) is None
    assert failure_reason(errored) == "match ended in error"
    assert failure_reason(taken) == "seat taken over"
    away = finished("away")   # silent too long (or back too late): an AI took the seat, and they were told
    assert failure_reason(away) == "seat taken over (away)"
    summary = summarise("http://127.0.0.1:5000", [clean, errored, taken, away], 1.0)
    assert (summary["completed"], summary["failed"]) == (4, 3)
    assert summary["match_errors"] == 1 and summary["seats_taken_over"] == 2
    assert summary["failure_reasons"] == {"match ended in error": 1, "seat taken over": 1,
                                          "seat taken over (away)": 1}
    assert "matches ended in error: 1" in format_summary(summary)


# ----------------------------------------------------------------------------- server metrics

EXPOSITION = """
coplay_process_cpu_seconds_total {cpu}
coplay_process_resident_memory_bytes {rss}
coplay_relayed_packets_total {packets}
coplay_socket_disconnects_total 0
coplay_relay_seconds_bucket{{le="0.001"}} {fast}
coplay_relay_seconds_bucket{{le="0.01"}} {slow}
coplay_relay_seconds_bucket{{le="+Inf"}} {slow}
coplay_relay_seconds_sum {total}
coplay_relay_seconds_count {slow}
"""


def test_server_metrics_deltas_over_the_run() -> None:
    clock = FakeClock()
    scrapes = iter([
        dict(cpu=5.0, rss=50e6, packets=100, fast=90, slow=100, total=0.05),
        dict(cpu=5.5, rss=80e6, packets=1100, fast=1090, slow=1100, total=0.15),
        dict(cpu=6.0, rss=70e6, packets=2100, fast=1100, slow=2100, total=5.15),
    ])
    metrics = ServerMetrics("http://x", fetch=lambda: parse_metrics(EXPOSITION.format(**next(scrapes))), clock=clock)
    assert metrics.sample() == {"cpu_percent": None, "rss_bytes": 50e6}
    clock.now += 1
    assert metrics.sample() == {"cpu_percent": 50.0, "rss_bytes": 80e6}
    clock.now += 1
    metrics.sample()
    s = metrics.summary()
    assert s is not None
    assert s["cpu_seconds"] == 1.0 and s["cpu_percent_mean"] == 50.0 and s["cpu_percent_max"] == 50.0
    assert s["rss_bytes_max"] == 80e6 and s["relayed_packets"] == 2000
    assert s["cpu_us_per_relayed_packet"] == 500.0
    assert 0.001 < s["relay_seconds_p99"] <= 0.01   # half the relays since the start took over 1 ms


def test_server_without_metrics_gives_none_and_a_note() -> None:
    calls = []

    def missing() -> dict:
        calls.append(1)
        raise MetricsUnavailable("GET /metrics answered HTTP 404")

    metrics = ServerMetrics("http://x", fetch=missing)
    assert metrics.sample() == {"cpu_percent": None, "rss_bytes": None}
    metrics.sample()
    assert metrics.summary() is None and metrics.note == "GET /metrics answered HTTP 404" and len(calls) == 1


# ----------------------------------------------------------------------------- progress


class Stream:
    def __init__(self, tty: bool) -> None:
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_progress_overwrites_on_a_terminal_and_scrolls_in_ci() -> None:
    from app.commands.loadtest import ProgressPrinter

    tty, ci = Stream(True), Stream(False)
    for stream in (tty, ci):
        printer = ProgressPrinter(stream)   # type: ignore[arg-type]
        printer("loadtest 1.0s long line")
        printer("loadtest 2.0s")
        printer.end()
    assert tty.text == "\rloadtest 1.0s long line\r" + "loadtest 2.0s".ljust(len("loadtest 1.0s long line")) + "\n"
    assert ci.text == "loadtest 1.0s long line\nloadtest 2.0s\n"


def test_full_mode_selfcheck_counts_the_packets_sent_on_match_channels() -> None:
    from app.loadtest.cohort import CohortOptions, ThreadCohort
    from app.loadtest.selfcheck import merge, verdict
    from app.loadtest.summary import format_generator

    cohort = ThreadCohort([], CohortOptions(url="http://127.0.0.1:1/", session="s"))
    for i, by_path in enumerate(({"channel": 95, "socketio": 5}, {"socketio": 40}, {})):
        cohort.results[i] = ParticipantResult(completed=True, reason="completed",
                                              stats={"packets_sent": sum(by_path.values()), "packets_received": 90},
                                              packets_by_path=by_path)
    cohort.check.stop()
    generator = verdict(merge(cohort.selfcheck()))
    assert (generator["channel_packets"], generator["packets_sent"]) == (95, 140)
    assert "(95 of 140 sent on match channels)" in format_generator(generator, "full")
