"""Testing the tester: a load generator starved of CPU must say that it, not the server, was the
bottleneck (verdict INCONCLUSIVE, never FAIL), in both modes; an unloaded one must not (on a machine
so busy with other work that even an idle generator ticks late, it must say so). The starving
is real: a thread in the generator's process that holds the GIL for ~100 ms at a time (a C-level
sort), so the generator's ticks run late exactly as they do when it has too little CPU."""
from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import pytest

from app.commands.loadtest import run_loadtest
from app.loadtest.summary import format_summary
from game.rng import Rng
from tests.server_fixtures import Server
from tests.test_loadtest_e2e import start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("selfcheck"))
    yield running
    running.stop()


class GilHog:
    """A thread that holds the GIL in long C calls (sorting ~1e6 floats) with short breaks."""

    def __init__(self) -> None:
        rng = Rng(1)
        self.data = [rng.random() for _ in range(1_000_000)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sorted(self.data)
            time.sleep(0.005)

    def __enter__(self) -> GilHog:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("mode", ["wire", "full"])
def test_a_starved_generator_says_it_was_the_bottleneck(server: Server, mode: str) -> None:
    with GilHog():
        summary = run_loadtest(server.url, 2, seed=21, timeout=90, duration=90, processes=1, mode=mode)
    assert not [f for f in summary["failures"] if f["reason"].startswith("crashed")], summary["failures"]
    generator = summary["generator"]
    assert generator["bottleneck"], generator
    assert any("ticks ran late" in why or "lagged" in why for why in generator["why"]), generator["why"]
    assert summary["verdict"] == "INCONCLUSIVE", (summary["failures"], summary["error_reasons"])
    text = format_summary(summary)
    assert "verdict: INCONCLUSIVE (the load generator, not the server, was the bottleneck" in text


@pytest.mark.parametrize("mode", ["wire", "full"])
def test_an_unloaded_generator_is_not_the_bottleneck(server: Server, mode: str) -> None:
    summary = run_loadtest(server.url, 2, seed=22, timeout=60, duration=60, processes=1, mode=mode)
    assert summary["completed"] == 2, summary["failures"]
    generator = summary["generator"]
    assert generator["tick_late_ms"]["samples"] >= 2 * 2 * 90
    if generator["bottleneck"]:
        # On a shared machine this busy (other test runs), the generator's ticks are late too, but it
        # was idle: it must say that other processes kept it off the CPU, never that it was busy itself.
        assert max(generator["cpu_percent_per_process"]) < 90, generator
        assert "other processes on this machine kept it off the CPU" in generator["why"][-1], generator["why"]
    else:
        assert summary["verdict"] == "PASS"
