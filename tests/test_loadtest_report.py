"""The load-test HTML report (app/loadtest/report.py) and its SVG charts (app/loadtest/charts.py)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app.loadtest.report import render_report, verdict, write_report
from app.loadtest.charts import histogram_chart, histogram_counts, nice_ticks, percentile


def full_summary() -> dict[str, Any]:
    rtt = [2.0 + (i % 17) * 0.5 for i in range(200)]
    return {
        "url": "http://127.0.0.1:5000",
        "participants": 6, "completed": 6, "failed": 0, "failures": [], "dropped": 0,
        "disconnects": 0, "desyncs": 0, "errors": 0, "matches": 3, "match_ends": {"completed": 6},
        "wall_seconds": 41.5,
        "relay_rtt_ms": {"p50": 6.0, "p95": 9.5, "p99": 10.0, "max": 10.0, "samples": 200},
        "rollbacks_per_100_frames": 1.25, "max_rollback_depth": 3, "stalls_per_minute": 0.0,
        "connect_seconds": {"mean": 0.21, "max": 0.4, "p50": 0.2, "p95": 0.38},
        "waiting_seconds": {"mean": 1.5, "max": 3.0},
        "first_frame_seconds": {"mean": 0.3, "max": 0.6},
        "server": {"cpu_seconds": 12.5, "cpu_percent_mean": 30.2, "cpu_percent_max": 87.5,
                   "rss_bytes_max": 123 * 2**20, "relayed_packets": 43210, "cpu_us_per_relayed_packet": 289.3,
                   "relay_seconds_p99": 0.0042},
        "timeline": [{"t": float(t), "phases": {"connecting": max(0, 6 - 2 * t), "playing": min(6, 2 * t)},
                      "cpu_percent": 10.0 * t, "rss_bytes": (100 + t) * 2**20} for t in range(6)],
        "samples": {"connect_seconds": [0.1, 0.2, 0.2, 0.3, 0.4, 0.1], "waiting_seconds": [1, 2, 3, 1, 2, 0.5],
                    "first_frame_seconds": [0.2, 0.3, 0.6, 0.25, 0.3, 0.4], "relay_rtt_ms": rtt},
        "settings": {"arrival": "burst", "profile": "lan", "processes": 2, "duration": 30},
        "browsers": {"pages": 2, "started": 2, "completed": 2, "pyodide_start_seconds": [3.2, 4.1],
                     "disconnects": 0, "failures": []},
    }


def chart(html: str, chart_id: str) -> str:
    match = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', html, re.S)
    assert match, f"no chart {chart_id}"
    return match.group(0)


def test_a_full_summary_renders_every_chart_with_titles_and_numbers(tmp_path: Path) -> None:
    path = write_report(full_summary(), tmp_path / "report")
    assert path == tmp_path / "report" / "index.html"
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "✔ PASS" in html
    assert "<script" not in html and "http://" not in html.replace("http://127.0.0.1:5000", "").replace(
        "http://www.w3.org/2000/svg", "")
    titles = {
        "chart-phases": "Participants over time, by phase", "chart-cpu": "Server CPU over time",
        "chart-rss": "Server memory (RSS) over time", "chart-rtt": "Relay round-trip time",
        "chart-connect": "Time to connect", "chart-waiting": "Time in the waiting room",
        "chart-first-frame": "Match start to first frame", "chart-startup-cdf": "Start-up times, cumulative",
        "chart-pyodide": "Pyodide start in the browser",
    }
    for chart_id, title in titles.items():
        svg = chart(html, chart_id)
        assert f'<title id="{chart_id}-title">{title}</title>' in svg
        assert 'role="img"' in svg and "no data" not in svg
    phases = chart(html, "chart-phases")
    assert phases.count('<g class="series">') == 2 and ">connecting</text>" in phases and ">playing</text>" in phases
    assert chart(html, "chart-rtt").count('class="bar"') >= 10
    assert "p99 10" in chart(html, "chart-rtt")
    assert html.count("<figcaption>") == len(titles)
    for figure in ("289 µs", "87.5 %", "123.0 MiB", "4.2 ms", "43210", "41.5 s", "6 ms / 9.5 ms / 10 ms"):
        assert figure in html, figure


def test_an_empty_summary_renders_and_says_no_data(tmp_path: Path) -> None:
    for summary in ({}, {"participants": 0, "timeline": None, "samples": None, "server": None, "failures": None},
                    {"timeline": [{"t": 0}], "samples": {"relay_rtt_ms": []}, "relay_rtt_ms": {}}):
        html = write_report(summary, tmp_path).read_text(encoding="utf-8")
        assert "✘ FAIL" in html and "no participants ran" in html
        assert "no data" in chart(html, "chart-rtt") and "no data" in chart(html, "chart-phases")
        assert "no data" in chart(html, "chart-cpu") and "n/a" in html
        assert "chart-pyodide" not in html


def test_failures_are_counted_and_escaped() -> None:
    summary = full_summary()
    summary.update(completed=3, failed=3, disconnects=1, failures=[
        {"participant": 1, "reason": "timeout"}, {"participant": 2, "reason": "timeout"},
        {"participant": 4, "reason": "<script>alert('x')</script>"}])
    summary["settings"]["profile"] = "<b>bad</b>"
    html = render_report(summary)
    assert "<script>" not in html and "<b>bad</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html and "&lt;b&gt;bad&lt;/b&gt;" in html
    assert re.search(r"<th>participant</th><td>timeout</td><td class=\"num\">2</td>", html)
    assert "✘ FAIL" in html and "3 of 6 participants" in html and "1 unexpected disconnect(s)" in html


def test_the_verdict_ignores_deliberately_dropped_participants() -> None:
    summary = full_summary()
    summary.update(completed=5, dropped=1, failed=1, failures=[{"participant": 0, "reason": "dropped at frame 90"}])
    assert verdict(summary) == (True, [])
    summary["desyncs"] = 2
    assert verdict(summary) == (False, ["2 desync(s)"])
    summary["browsers"]["completed"] = 1
    assert verdict(summary)[1][-1] == "1 of 2 browser pages did not complete"


def test_the_same_summary_gives_the_same_bytes() -> None:
    assert render_report(full_summary()) == render_report(full_summary())


def test_histogram_bins_and_ticks() -> None:
    edges, counts = histogram_counts([0, 1, 2, 3, 4, 4, 0.5, 3.99], bins=4)
    assert edges == [0, 1, 2, 3, 4] and counts == [2, 1, 1, 4]
    edges, counts = histogram_counts([5, 5, 5], bins=2)   # one distinct value: a unit-wide range around it
    assert edges == [4.5, 5.0, 5.5] and counts == [0, 3]
    edges, counts = histogram_counts([-1, 11], bins=5, lo=0, hi=10)   # outside values clamp into the ends
    assert counts == [1, 0, 0, 0, 1]
    assert nice_ticks(0, 87) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0.1, 0.4) == [0.1, 0.2, 0.3, 0.4]
    assert nice_ticks(0, 2, integer=True) == [0, 1, 2] and nice_ticks(0, 12, integer=True) == [0, 5, 10, 15]
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([], 50) is None
    svg = histogram_chart([0, 1, 2, 3, 4, 4, 0.5, 3.99], title="t", chart_id="h", x_label="x", bins=4)
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 4 and heights[3] == max(heights) and abs(heights[3] - 2 * heights[0]) < 0.05


def test_a_run_whose_generator_was_the_bottleneck_says_inconclusive_not_fail() -> None:
    summary = full_summary()
    summary.update(completed=4, failed=2, failures=[{"participant": 0, "reason": "timeout"}] * 2,
                   verdict="INCONCLUSIVE", verdict_note="the load generator, not the server, was the bottleneck: "
                   "its match ticks ran late: p99 80.0 ms > 2 frames (33.3 ms)")
    html = render_report(summary)
    assert "<title>coplay load test: INCONCLUSIVE</title>" in html and "✘ FAIL" not in html
    assert "? INCONCLUSIVE</strong>the load generator, not the server, was the bottleneck" in html
    assert "<title>coplay load test: PASS</title>" in render_report(full_summary())
