"""benchmarks/capacity.py's pass criteria and table rows (the search itself needs minutes of load)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def capacity() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capacity_benchmark", ROOT / "benchmarks" / "capacity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_run_passes_only_without_disconnects_failures_and_with_a_low_relay_p99() -> None:
    bench = capacity()
    good = {"participants": 10, "completed": 10, "matches": 5, "disconnects": 0, "failed": 0, "desyncs": 0,
            "relay_rtt_ms": {"p50": 3.0, "p99": 12.0},
            "server": {"relay_seconds_p99": 0.004, "cpu_percent_mean": 40.0, "cpu_us_per_relayed_packet": 300.0},
            "generator": {"bottleneck": False, "why": [], "cpu_percent_per_process": [31.0, 29.0],
                          "cpu_us_per_packet": 42.0, "tick_late_ms": {"p99": 2.5}}}
    row = bench.Row(5, good)
    assert row.problems(20, "both") == [] and row.relay_p99_ms("server") == 4.0 and row.relay_p99_ms("both") == 12.0
    assert row.problems(10, "both") == ["relay p99 12.0 ms >= 10 ms"] and row.problems(10, "server") == []
    assert bench.Row(5, {**good, "disconnects": 2, "failed": 1}).problems(20, "both") == ["2 disconnects", "1 failed"]
    assert bench.Row(5, {**good, "relay_rtt_ms": {}, "server": None}).problems(20, "both") == ["no relay p99 measured"]
    assert bench.Row(5, {}, "the load test did not finish in time").problems(20, "both") == [
        "the load test did not finish in time"]
    assert row.verdict(20, "server") == "ok" and row.inconclusive() is None
    assert bench.Row(5, {**good, "failed": 1}).verdict(20, "server") == "FAIL: 1 failed"
    line = bench.format_row(row, 20, "both")
    assert line.split()[:4] == ["5", "5", "10/10", "0"] and line.endswith("ok") and "300" in line
    assert "31/29" in line and " 42 " in line


def test_a_run_whose_generator_fell_behind_is_inconclusive_never_a_server_failure() -> None:
    bench = capacity()
    behind = {"participants": 20, "completed": 14, "matches": 10, "disconnects": 3, "failed": 6, "desyncs": 0,
              "relay_rtt_ms": {"p50": 300.0, "p99": 900.0}, "server": {"relay_seconds_p99": 0.002},
              "generator": {"bottleneck": True, "why": ["its match ticks ran late: p99 80.0 ms > 2 frames (33.3 ms)"],
                            "cpu_percent_per_process": [99.0], "cpu_us_per_packet": 400.0,
                            "tick_late_ms": {"p99": 80.0}}}
    row = bench.Row(10, behind)
    assert row.verdict(20, "server") == ("INCONCLUSIVE: the load generator, not the server, was the bottleneck: "
                                         "its match ticks ran late: p99 80.0 ms > 2 frames (33.3 ms)")
    assert "FAIL" not in bench.format_row(row, 20, "server")


def test_the_comparison_puts_old_and_new_side_by_side_with_ratios() -> None:
    bench = capacity()
    new = bench.Row(150, {"server": {"cpu_us_per_relayed_packet": 50.0, "relay_seconds_p99": 0.004,
                                     "cpu_percent_mean": 60.0}})
    old = bench.Row(10, {"server": {"cpu_us_per_relayed_packet": 500.0, "relay_seconds_p99": 0.008,
                                    "cpu_percent_mean": 70.0}})
    table = bench.comparison({("eventlet", "new"): (150, new, ""), ("eventlet", "baseline"): (10, old, " (stopped)")},
                             ["eventlet"], ["new", "baseline"])
    ratios = [line for line in table.splitlines() if "new/old" in line][0].split()
    assert ratios[2:5] == ["15.00x", "0.10x", "0.50x"]
    assert any(line.startswith("eventlet   baseline") and line.endswith("*") for line in table.splitlines())
