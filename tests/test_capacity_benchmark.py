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
    # a saturated server whose backlog waits in socket buffers: its own histogram looks fine, the median does not
    backlog = bench.Row(5, {**good, "relay_rtt_ms": {"p50": 351.1, "p99": 1414.0}})
    assert backlog.verdict(20, "server") == "FAIL: participants' relay round trip p50 351.1 ms >= 20 ms"
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


def accounting() -> ModuleType:
    capacity()   # puts the checkout on sys.path, as the benchmark does
    return importlib.import_module("benchmarks.cpu_accounting")


def test_proc_files_are_read_as_proc5_lays_them_out() -> None:
    acc = accounting()
    tick = acc.TICKS_PER_SECOND
    stat = acc.parse_proc_stat(f"4242 (py (x) y) S 17 4242 4242 0 -1 4194304 1 0 0 0 {3 * tick} {tick} 0 0 20 0 1")
    assert (stat.comm, stat.ppid, stat.cpu_seconds) == ("py (x) y", 17, 4.0)
    busy, total = acc.parse_machine_busy(f"cpu  {tick} 0 {tick} {6 * tick} {2 * tick} 0 0 0 0 0\n"
                                         "cpu0 1 0 0 0 0 0 0 0\n")
    assert (busy, total) == (2.0, 10.0)
    assert acc.descendants(1, {2: 1, 3: 2, 4: 9, 5: 3}) == {1, 2, 3, 5}
    assert acc.http_base("ws://127.0.0.1:4100/match-ws") == "http://127.0.0.1:4100"
    assert acc.http_base("wss://relay.example:443/match-ws") == "https://relay.example:443"
    table = {10: acc.ProcStat("python", 1, 1.0), 11: acc.ProcStat("python", 10, 1.0),
             12: acc.ProcStat("redis-server", 10, 1.0), 13: acc.ProcStat("sh", 10, 1.0),
             20: acc.ProcStat("python", 1, 1.0), 21: acc.ProcStat("python", 20, 1.0), 30: acc.ProcStat("x", 1, 1.0)}
    relay = acc.Endpoint("relay a", "http://x", 11, True)
    assert acc.roles_of(table, 10, 20, [relay]) == {10: "coordinator", 11: "relay a", 12: "redis",
                                                    13: "server other", 20: "generator", 21: "generator"}


def play(acc: ModuleType, t: float, matches: tuple[int, int], packets: tuple[int, int], relay_cpu: tuple[float, float],
         generator_cpu: float, slow: int = 0) -> object:
    """A sample of a coordinator (pid 1) with relays a (pid 2) and b (pid 3), the generator pid 9."""
    def buckets(n: int, slow_ones: int) -> list[tuple[float, float]]:
        return [(0.001, n - slow_ones), (0.05, n), (float("inf"), n)]
    figures = {"coordinator": acc.Figures(0, sum(matches), buckets(0, 0)),
               "relay a": acc.Figures(packets[0], matches[0], buckets(packets[0], slow), packets[0] / 10),
               "relay b": acc.Figures(packets[1], matches[1], buckets(packets[1], 0), packets[1] / 20)}
    return acc.Sample(t, {1: t * 0.02, 2: relay_cpu[0], 3: relay_cpu[1], 4: 0.0, 9: generator_cpu},
                      {1: "coordinator", 2: "relay a", 3: "relay b", 4: "redis", 9: "generator"},
                      (1.5 * t, 2.0 * t), figures)


def test_the_accounting_takes_cpu_over_the_play_window_and_merges_every_relays_histogram() -> None:
    acc = accounting()
    endpoints = [acc.Endpoint("coordinator", "http://c", 1, False), acc.Endpoint("relay a", "http://a", 2, True),
                 acc.Endpoint("relay b", "http://b", 3, True)]
    samples = [play(acc, 0, (0, 0), (0, 0), (0.0, 0.0), 0.0),
               play(acc, 1, (3, 2), (300, 200), (0.1, 0.05), 0.5),           # matches still starting
               play(acc, 2, (5, 5), (900, 900), (0.4, 0.35), 1.4),           # all ten running: the window
               play(acc, 3, (5, 5), (1500, 1500), (0.7, 0.65), 2.3),
               play(acc, 4, (5, 5), (2100, 2100), (1.0, 0.95), 3.2),
               play(acc, 5, (0, 0), (2400, 2400), (1.1, 1.05), 3.5, slow=100)]  # ending; 100 slow relays in a
    assert acc.play_window(samples, ["relay a", "relay b"]) == (2, 4)
    result = acc.account(samples, endpoints, 2, 120)
    assert (result.window_s, result.matches, result.packets) == (2, 10, 2400)
    assert result.cpu_percent == {"coordinator": 2.0, "relay a": 30.0, "relay b": 30.0, "redis": 0.0,
                                  "generator": 90.0}
    assert result.server_percent() == 62.0 and round(result.us_per_packet()) == round(1.24e6 / 2400)
    assert result.machine_percent == 150.0 and not result.machine_full() and result.others_percent() == 0.0
    # 100 of 4800 relays took over 1 ms: p99 lands inside (1 ms, 50 ms], merged from both relays' buckets.
    assert 1.0 < result.relay_p99_ms < 50.0
    # Each relay: 0.6 s of CPU for 1200 packets = 500 us a packet; 1 s / 500 us / 120 packets a match = 16.7 matches.
    assert {k: round(v, 1) for k, v in result.estimate.items()} == {"relay a": 16.7, "relay b": 16.7}
    assert round(result.estimated_matches()) == 33
    lines = acc.format_accounting(result)
    assert "relay a 30 %, relay b 30 %, redis 0 % = server 62 %" in lines[0] and "machine 150 % of 200 %" in lines[0]
    assert "generator 90 %; other processes 0 %" in lines[0]
    assert "(517 us/pkt), 13.3 pkt per pump batch;" in lines[0]   # 2400 packets in 120 + 60 pump rounds
    assert "an estimate, not a measured hold" in lines[1] and "= 33 matches" in lines[1]


def test_the_relay_counts_are_compared_at_the_same_m_and_at_the_same_load_per_relay() -> None:
    bench, acc = capacity(), accounting()
    ok = {"participants": 2, "completed": 2, "disconnects": 0, "failed": 0, "desyncs": 0, "relay_rtt_ms": {"p99": 5.0},
          "generator": {"bottleneck": False}}

    def row(m: int, cpu: dict[str, float], estimate: dict[str, float], verdict_ok: bool = True,
            lagging: bool = False) -> object:
        figures = acc.Accounting(10.0, m, 1000.0, {"coordinator": 1.0, **cpu}, 120.0, 2, 2.0 if verdict_ok else 30.0,
                                 estimate)
        generator = {"bottleneck": lagging, "why": ["its ticks ran late"] if lagging else []}
        return bench.Row(m, {**ok, "participants": 2 * m, "completed": 2 * m, "generator": generator},
                         accounting=figures)

    rows = {"relays=1": [row(10, {"relay x": 20.0}, {"relay x": 50.0}), row(20, {"relay x": 35.0}, {"relay x": 57.0})],
            "relays=2": [row(10, {"relay y": 12.0, "relay z": 12.0}, {"relay y": 42.0, "relay z": 42.0}),
                         row(20, {"relay y": 20.0, "relay z": 20.0}, {"relay y": 50.0, "relay z": 50.0}, lagging=True),
                         row(30, {"relay y": 30.0, "relay z": 30.0}, {"relay y": 50.0, "relay z": 50.0}, False)]}
    table = bench.accounting_comparison(rows, {"relays=1": 1, "relays=2": 2}, 20, "server")
    same_m, same_load = table.split("\n\n")
    # A lagging generator leaves the row in (marked): the accounting is per packet. A failed row is left out.
    assert "at the same M = 20:" in same_m
    assert same_m.splitlines()[-1].split()[-4:] == ["100", "1.75x", "1.75x", "INCONCLUSIVE"]
    assert "(M / relays) = 10:" in same_load
    assert same_load.splitlines()[2].split()[:2] == ["relays=1", "10"]
    assert same_load.splitlines()[3].split()[:3] == ["relays=2", "20", "20/20"]
    assert same_load.splitlines()[3].split()[-4:] == ["100", "2.00x", "2.00x", "INCONCLUSIVE"]
    assert same_load.splitlines()[2].split()[-1] == "ok"
    none = bench.accounting_comparison({"relays=1": rows["relays=1"][:1], "relays=2": rows["relays=2"][1:]},
                                       {"relays=1": 1, "relays=2": 2}, 20, "server")
    assert none.startswith("capacity by CPU accounting at the same M: no row ran without failing")
