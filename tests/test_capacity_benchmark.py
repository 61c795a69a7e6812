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
            "server": {"relay_seconds_p99": 0.004, "cpu_percent_mean": 40.0, "cpu_us_per_relayed_packet": 300.0}}
    row = bench.Row(5, good)
    assert row.problems(20, "both") == [] and row.relay_p99_ms("server") == 4.0 and row.relay_p99_ms("both") == 12.0
    assert row.problems(10, "both") == ["relay p99 12.0 ms >= 10 ms"] and row.problems(10, "server") == []
    assert bench.Row(5, {**good, "disconnects": 2, "failed": 1}).problems(20, "both") == ["2 disconnects", "1 failed"]
    assert bench.Row(5, {**good, "relay_rtt_ms": {}, "server": None}).problems(20, "both") == ["no relay p99 measured"]
    assert bench.Row(5, {}, "the load test did not finish in time").problems(20, "both") == [
        "the load test did not finish in time"]
    assert row.behind(30) is None and bench.Row(5, {**good, "wall_seconds": 31.0}).behind(30) is None
    slow = bench.Row(5, {**good, "wall_seconds": 53.0})
    assert slow.behind(30) == "load generator fell behind: the 30 s matches took 53 s"
    assert bench.format_row(slow, 20, "server", 30).endswith("not 60 fps: load generator fell behind: the 30 s "
                                                              "matches took 53 s")
    line = bench.format_row(row, 20, "both")
    assert line.split()[:4] == ["5", "5", "10/10", "0"] and line.endswith("ok") and "300" in line
