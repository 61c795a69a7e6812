"""The dashboard's plots, as inline SVG from the load tester's chart code (app/loadtest/charts.py):
participants arrived and completed over time (cumulative, per minute), and the relay's round trips."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from app.loadtest.charts import Series, histogram_chart, line_chart, no_data, percentile

WIDTH, HEIGHT = 520, 220


def charts(snapshot: dict[str, Any]) -> dict[str, str]:
    """{"people": svg, "rtt": svg} for a snapshot of app/live/dashboard.py."""
    arrivals, completions = snapshot["arrivals"], snapshot["completions"]
    start = arrivals[0][0] if arrivals else None
    series = [Series("arrived", _cumulative(arrivals, start)), Series("completed", _cumulative(completions, start))]
    people = line_chart(series, title="Participants over time", chart_id="chart-people", x_label="minutes",
                        y_label="participants", desc="cumulative arrivals and completions per minute",
                        width=WIDTH, height=HEIGHT)
    rtt = snapshot["live"]["rtt_ms"]
    if rtt:
        markers = [(name, value) for name, value in (("p50", percentile(rtt, 50)), ("p99", percentile(rtt, 99)))
                   if value is not None]
        rtt_chart = histogram_chart(rtt, title="Relay round trip, running matches", chart_id="chart-rtt",
                                    x_label="ms", markers=markers, width=WIDTH, height=HEIGHT)
    else:
        rtt_chart = no_data("Relay round trip, running matches", "chart-rtt", "no match running", width=WIDTH)
    return {"people": people, "rtt": rtt_chart}


def _cumulative(per_minute: list[list[Any]], start: str | None) -> list[tuple[float, float]]:
    """(minutes since `start`, running total) points; a single minute gets a second point so it draws."""
    if start is None:
        return []
    origin = datetime.fromisoformat(start)
    points, total = [], 0
    for minute, count in per_minute:
        total += count
        points.append(((datetime.fromisoformat(minute) - origin).total_seconds() / 60, float(total)))
    if len(points) == 1:
        points.append((points[0][0] + 1, points[0][1]))
    return points
