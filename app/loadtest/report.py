"""The HTML report of a load test: one self-contained `index.html` (inline CSS and SVG).

`write_report(summary, directory)` turns the summary `coplay loadtest` produces into a
page a person can take in at a glance: a PASS/FAIL verdict with its reasons, the key
figures, participants per phase over time, server CPU and memory over time, latency
distributions (relay round trip, connect, waiting room, first frame, Pyodide start) and
the failures by reason. Missing parts of the summary show as "n/a" or "no data". The page
is the template templates/report.html (with report.css inlined; the charts are inline SVG from
app/loadtest/charts.py). All text from the summary is HTML-escaped; the same summary always gives
the same bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from app.loadtest.charts import Series, cdf_points, histogram_chart, line_chart, no_data, percentile

MAX_TABLE_ROWS = 60   # a chart's data table shows at most this many (evenly spaced) rows

# ---------------------------------------------------------------- reading the summary

def _get(data: Any, *keys: str) -> Any:
    """data[k1][k2]...; None when any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _numbers(value: Any) -> list[float]:
    if not isinstance(value, (list, tuple)):
        return []
    return [n for n in (_number(v) for v in value) if n is not None]


def _scaled(value: Any, factor: float) -> float | None:
    number = _number(value)
    return None if number is None else number * factor


def _int(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None else 0


def fmt(value: Any, unit: str = "", digits: int = 3) -> str:
    """A number with up to `digits` significant digits (integers in full) and a unit; "n/a" if missing."""
    number = _number(value)
    if number is None:
        return "n/a"
    text = f"{number:.0f}" if number.is_integer() or abs(number) >= 10 ** digits else f"{number:.{digits}g}"
    return f"{text} {unit}".rstrip() if unit else text


def fmt_bytes(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number / 2**20:.1f} MiB"


def _failures(summary: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(who, reason, count), participants' first, most frequent first."""
    rows: list[tuple[str, str, int]] = []
    for who, items in (("participant", _get(summary, "failures")), ("browser page", _get(summary, "browsers", "failures"))):
        counts: dict[str, int] = {}
        for item in items if isinstance(items, list) else []:
            reason = str(item.get("reason") if isinstance(item, Mapping) else item)
            counts[reason] = counts.get(reason, 0) + 1
        rows += [(who, reason, n) for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return rows


def verdict(summary: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """PASS when every participant not deliberately dropped completed, with no disconnects or desyncs
    (and every browser page, if any, completed without disconnects). Returns (passed, reasons)."""
    reasons: list[str] = []
    participants, completed = _int(_get(summary, "participants")), _int(_get(summary, "completed"))
    expected = participants - _int(_get(summary, "dropped"))
    if participants <= 0:
        reasons.append("no participants ran")
    elif completed < expected:
        reasons.append(f"{expected - completed} of {expected} participants (not deliberately dropped) did not complete")
    for key, what in (("disconnects", "unexpected disconnect(s)"), ("desyncs", "desync(s)")):
        if _int(_get(summary, key)) > 0:
            reasons.append(f"{_int(_get(summary, key))} {what}")
    if _get(summary, "interrupted"):
        reasons.append("the run was interrupted")
    browsers = _get(summary, "browsers")
    if isinstance(browsers, Mapping):
        pages, done = _int(browsers.get("pages")), _int(browsers.get("completed"))
        if done < pages:
            reasons.append(f"{pages - done} of {pages} browser pages did not complete")
        if _int(browsers.get("disconnects")) > 0:
            reasons.append(f"{_int(browsers.get('disconnects'))} browser disconnect(s)")
    return not reasons, reasons


# ---------------------------------------------------------------- what the template shows

def _escape(value: Any) -> Markup:
    """Escape as `html.escape` does (the report's bytes stay as they were); Markup passes through."""
    return value if isinstance(value, Markup) else Markup(escape(str(value)))


TEMPLATES = Environment(loader=PackageLoader("app.loadtest"), autoescape=True, finalize=_escape, trim_blocks=True,
                        lstrip_blocks=True, keep_trailing_newline=True)


@dataclass(frozen=True)
class Table:
    """Rows of already-formatted cell texts; the first cell of a row is its header cell."""

    rows: Sequence[Sequence[str]] = ()
    header: Sequence[str] = ()
    numeric: Sequence[bool] = ()

    def is_numeric(self, column: int) -> bool:
        return column < len(self.numeric) and self.numeric[column]


@dataclass(frozen=True)
class Figure:
    """A chart (inline SVG), its caption and, optionally, its data as a table."""

    svg: Markup
    caption: str
    details: Table | None = None


def _table(rows: Iterable[Sequence[str]], header: Sequence[str] = (), numeric: Sequence[bool] = ()) -> Table:
    return Table(list(rows), header, numeric)


def _figure(svg: str, caption: str, details: Table | None = None) -> Figure:
    return Figure(Markup(svg), caption, details)


def _spread(summary: Mapping[str, Any], key: str, unit: str) -> str:
    spread = _get(summary, key)
    parts = [f"{name} {fmt(_get(spread, name), unit)}" for name in ("mean", "p50", "p95", "max")
             if name in ("mean", "max") or _get(spread, name) is not None]
    return ", ".join(parts)


def _key_figures(summary: Mapping[str, Any]) -> list[tuple[str, Table]]:
    ends = _get(summary, "match_ends")
    ends_text = ", ".join(f"{k} {v}" for k, v in sorted(ends.items())) if isinstance(ends, Mapping) and ends else "n/a"
    rtt = _get(summary, "relay_rtt_ms")
    run = [
        ("Participants", fmt(_get(summary, "participants"))),
        ("Completed", fmt(_get(summary, "completed"))),
        ("Failed", fmt(_get(summary, "failed"))),
        ("Deliberately dropped", fmt(_get(summary, "dropped"))),
        ("Disconnects", fmt(_get(summary, "disconnects"))),
        ("Desyncs", fmt(_get(summary, "desyncs"))),
        ("Partners replaced by AI", fmt(_get(summary, "partner_drops"))),
        ("Errors", fmt(_get(summary, "errors"))),
        ("Matches", fmt(_get(summary, "matches"))),
        ("Match ends", ends_text),
        ("Wall time", fmt(_get(summary, "wall_seconds"), "s")),
    ]
    net = [
        ("Relay RTT p50 / p95 / p99", " / ".join(fmt(_get(rtt, k), "ms") for k in ("p50", "p95", "p99"))),
        ("Relay RTT max", fmt(_get(rtt, "max"), "ms")),
        ("RTT samples", fmt(_get(rtt, "samples"))),
        ("Rollbacks per 100 frames", fmt(_get(summary, "rollbacks_per_100_frames"))),
        ("Max rollback depth", fmt(_get(summary, "max_rollback_depth"))),
        ("Stalls per minute", fmt(_get(summary, "stalls_per_minute"))),
        ("Time to connect", _spread(summary, "connect_seconds", "s")),
        ("Time in waiting room", _spread(summary, "waiting_seconds", "s")),
        ("Match start to first frame", _spread(summary, "first_frame_seconds", "s")),
    ]
    server = _get(summary, "server")
    srv = [
        ("CPU time", fmt(_get(server, "cpu_seconds"), "s")),
        ("CPU mean / max", f"{fmt(_get(server, 'cpu_percent_mean'), '%')} / {fmt(_get(server, 'cpu_percent_max'), '%')}"),
        ("Max RSS", fmt_bytes(_get(server, "rss_bytes_max"))),
        ("Relayed packets", fmt(_get(server, "relayed_packets"))),
        ("CPU per relayed packet", fmt(_get(server, "cpu_us_per_relayed_packet"), "µs")),
        ("Server relay time p99", fmt(_scaled(_get(server, "relay_seconds_p99"), 1000), "ms")),
    ] if isinstance(server, Mapping) else [("Server metrics", "n/a")]
    blocks = [("Run", run), ("Network and netcode", net), ("Server", srv)]
    browsers = _get(summary, "browsers")
    if isinstance(browsers, Mapping):
        starts = _numbers(browsers.get("pyodide_start_seconds"))
        blocks.append(("Browsers", [
            ("Pages", fmt(browsers.get("pages"))),
            ("Started Pyodide", fmt(browsers.get("started"))),
            ("Completed", fmt(browsers.get("completed"))),
            ("Disconnects", fmt(browsers.get("disconnects"))),
            ("Pyodide start p50 / max", f"{fmt(percentile(starts, 50), 's')} / {fmt(max(starts, default=None), 's')}"),
        ]))
    return [(name, _table(rows, numeric=(False, True))) for name, rows in blocks]


def _settings(summary: Mapping[str, Any]) -> Table:
    settings = _get(summary, "settings")
    if not isinstance(settings, Mapping):
        return Table()
    rows = [(str(k), fmt(v) if _number(v) is not None else str(v)) for k, v in sorted(settings.items(), key=lambda kv: str(kv[0]))]
    return _table(rows)


def _timeline(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    timeline = _get(summary, "timeline")
    points = [p for p in timeline if isinstance(p, Mapping) and _number(p.get("t")) is not None] \
        if isinstance(timeline, list) else []
    return sorted(points, key=lambda p: p["t"])


def _thin(rows: Sequence[Any]) -> list[Any]:
    if len(rows) <= MAX_TABLE_ROWS:
        return list(rows)
    step = (len(rows) - 1) / (MAX_TABLE_ROWS - 1)
    return [rows[round(i * step)] for i in range(MAX_TABLE_ROWS)]


def _phase_chart(timeline: Sequence[Mapping[str, Any]]) -> Figure:
    title = "Participants over time, by phase"
    counts = [{str(k): _number(v) or 0.0 for k, v in p["phases"].items()} if isinstance(p.get("phases"), Mapping)
              else {} for p in timeline]
    phases: list[str] = []
    for count in counts:
        phases += [phase for phase in count if phase not in phases]
    if not phases:
        return _figure(no_data(title, "chart-phases"), "How many participants were in each phase at each moment.")
    series = [Series(phase, [(p["t"], c.get(phase, 0)) for p, c in zip(timeline, counts)]) for phase in phases]
    svg = line_chart(series, title=title, chart_id="chart-phases", x_label="time since start (s)",
                     y_label="participants", desc=f"participants per phase ({', '.join(phases)}) over time")
    rows = [[fmt(p["t"], "s")] + [fmt(c.get(phase, 0)) for phase in phases] for p, c in _thin(list(zip(timeline, counts)))]
    table = _table(rows, ["t", *phases], numeric=[True] * (len(phases) + 1))
    return _figure(svg, "How many participants were in each phase at each moment; each phase has its own "
                   "line style and marker.", table)


def _server_charts(timeline: Sequence[Mapping[str, Any]]) -> list[Figure]:
    cpu = [(p["t"], v) for p in timeline if (v := _number(p.get("cpu_percent"))) is not None]
    rss = [(p["t"], v / 2**20) for p in timeline if (v := _number(p.get("rss_bytes"))) is not None]
    cpu_title, rss_title = "Server CPU over time", "Server memory (RSS) over time"
    cpu_svg = line_chart([Series("CPU %", cpu)], title=cpu_title, chart_id="chart-cpu", x_label="time since start (s)",
                         y_label="CPU %", desc="server process CPU use in percent of one core over time") \
        if cpu else no_data(cpu_title, "chart-cpu")
    rss_svg = line_chart([Series("RSS MiB", rss)], title=rss_title, chart_id="chart-rss", x_label="time since start (s)",
                         y_label="MiB", desc="server process resident memory in MiB over time") \
        if rss else no_data(rss_title, "chart-rss")
    return [
        _figure(cpu_svg, "CPU use of the server process (100 % is one full core).",
                _table([(fmt(t, "s"), fmt(v, "%")) for t, v in _thin(cpu)], ["t", "CPU"], (True, True)) if cpu else None),
        _figure(rss_svg, "Resident memory of the server process.",
                _table([(fmt(t, "s"), fmt(v, "MiB")) for t, v in _thin(rss)], ["t", "RSS"], (True, True)) if rss else None),
    ]


def _stats_table(values: Sequence[float], unit: str) -> Table:
    rows = [("n", fmt(len(values)))] + [
        (name, fmt(v, unit)) for name, v in (("min", min(values)), ("p50", percentile(values, 50)),
                                             ("p95", percentile(values, 95)), ("p99", percentile(values, 99)),
                                             ("max", max(values)))]
    return _table(rows, numeric=(False, True))


def _distribution(values: Sequence[float], title: str, chart_id: str, x_label: str, unit: str, caption: str) -> Figure:
    if not values:
        return _figure(no_data(title, chart_id), caption)
    markers = [(name, percentile(values, q)) for name, q in (("p50", 50), ("p99", 99))]
    svg = histogram_chart(values, title=title, chart_id=chart_id, x_label=x_label, markers=markers)  # type: ignore[arg-type]
    return _figure(svg, caption + " Dashed lines mark the median (p50) and p99.", _stats_table(values, unit))


def _startup_cdf(samples: Mapping[str, Any]) -> Figure:
    title = "Start-up times, cumulative"
    names = (("connect_seconds", "connect"), ("waiting_seconds", "waiting room"), ("first_frame_seconds", "first frame"))
    series = [Series(label, cdf_points(_numbers(samples.get(key)))) for key, label in names]
    svg = line_chart(series, title=title, chart_id="chart-startup-cdf", x_label="seconds",
                     y_label="fraction of participants", desc="cumulative distributions of connect, waiting-room and "
                     "first-frame times", y_format=lambda v: f"{v:.0%}")
    return _figure(svg, "Share of participants (y) who were done with each step within x seconds.")


def _charts(summary: Mapping[str, Any]) -> list[Figure]:
    timeline = _timeline(summary)
    samples = _get(summary, "samples")
    samples = samples if isinstance(samples, Mapping) else {}
    figures = [_phase_chart(timeline), *_server_charts(timeline)]
    figures.append(_distribution(_numbers(samples.get("relay_rtt_ms")), "Relay round-trip time", "chart-rtt",
                                 "round-trip time (ms)", "ms",
                                 "Round trips of netcode packets through the server relay."))
    figures.append(_distribution(_numbers(samples.get("connect_seconds")), "Time to connect", "chart-connect",
                                 "seconds", "s", "From arrival to a connected socket."))
    figures.append(_distribution(_numbers(samples.get("waiting_seconds")), "Time in the waiting room", "chart-waiting",
                                 "seconds", "s", "From entering a waiting room to the match starting."))
    figures.append(_distribution(_numbers(samples.get("first_frame_seconds")), "Match start to first frame",
                                 "chart-first-frame", "seconds", "s", "From match start to the first simulated frame."))
    figures.append(_startup_cdf(samples))
    browsers = _get(summary, "browsers")
    if isinstance(browsers, Mapping):
        figures.append(_distribution(_numbers(browsers.get("pyodide_start_seconds")), "Pyodide start in the browser",
                                     "chart-pyodide", "seconds", "s",
                                     "From page load to Pyodide ready in each headless Chromium page."))
    return figures


def _failure_table(summary: Mapping[str, Any]) -> Table:
    return _table([(who, reason, str(n)) for who, reason, n in _failures(summary)],
                  ["who", "reason", "count"], (False, False, True))


def render_report(summary: Mapping[str, Any]) -> str:
    """The whole HTML page for `summary` (deterministic)."""
    summary = summary if isinstance(summary, Mapping) else {}
    passed, reasons = verdict(summary)
    settings = _get(summary, "settings")
    brief = ", ".join(f"{k} {settings[k]}" for k in ("arrival", "profile", "processes", "duration")
                      if isinstance(settings, Mapping) and settings.get(k) is not None)
    return TEMPLATES.get_template("report.html").render(
        passed=passed, reasons=reasons, url=str(_get(summary, "url") or "n/a"), brief=brief,
        inconclusive=str(_get(summary, "verdict_note")) if _get(summary, "verdict") == "INCONCLUSIVE" else "",
        key_figures=_key_figures(summary), figures=_charts(summary), failures=_failure_table(summary),
        settings=_settings(summary))


def write_report(summary: Mapping[str, Any], directory: str | Path) -> Path:
    """Write `directory/index.html` (creating the directory) and return its path."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    path.write_text(render_report(summary), encoding="utf-8")
    return path
