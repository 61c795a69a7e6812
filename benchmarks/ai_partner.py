"""Server CPU for one match of the demo's kitchen with the AI partner in the participant's worker
(`AISeat(..., runs="browser")`) versus the same partner as a server bot (runs="server").

Each turn starts a fresh server (its own process) and one headless Chromium page on autopilot, plays
one match, and reads the server process's CPU time (user + system, /proc) from the match's first
frame to its end. Prints both variants (median over the turns) and their ratio.

    python benchmarks/ai_partner.py [--turns N] [--frames F] [--fps FPS]

The machine's load shows in every figure: run on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.loadtest.chromium import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
from tests.server_fixtures import Server, pid  # noqa: E402

EXPERIMENT = '''
from scenes import AISeat, End, Experiment, Match

EXPERIMENT = Experiment(id="kitchen-bench", scenes=[
    Match(id="kitchen", game="game.games.cooking:Cooking", config={{"time_limit": {frames}}}, humans=("chef_1",),
          ai={{"chef_2": AISeat("random", runs="{runs}", seed=3)}}, episodes=1, fps={fps}),
    End(id="end", html="<p>Thanks</p>", completion_code="BENCH"),
])
'''


def cpu_seconds(process_id: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{process_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_match(browser: Any, runs: str, frames: int, fps: int) -> tuple[float, float]:
    """(server CPU seconds, wall seconds) of one match, from its first frame to its end."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "experiment.py").write_text(EXPERIMENT.format(runs=runs, frames=frames, fps=fps))
        server = Server(["serve", str(Path(folder) / "experiment.py")], Path(folder) / "data")
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{server.url}/?PROLIFIC_PID={pid()}&autopilot=1")
            state = "() => (window.coplay && window.coplay.match) || {}"
            deadline = time.monotonic() + 120 + frames / fps
            while not page.evaluate(state).get("frame"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the match did not start")
                time.sleep(0.05)
            cpu0, wall0 = cpu_seconds(server.process.pid), time.monotonic()
            while not page.evaluate(state).get("checksums"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the match did not end")
                time.sleep(0.05)
            return cpu_seconds(server.process.pid) - cpu0, time.monotonic() - wall0
        finally:
            context.close()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--frames", type=int, default=240, help="the kitchen's time_limit (frames per match)")
    parser.add_argument("--fps", type=int, default=8, help="8 is the demo's kitchen")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results: dict[str, list[tuple[float, float]]] = {"browser": [], "server": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for _ in range(args.turns):
            for runs in results:   # in turns, so a change in the machine's load touches both
                results[runs].append(one_match(browser, runs, args.frames, args.fps))
        browser.close()
    print(f"kitchen, {args.frames} frames at {args.fps} fps, median of {args.turns} turns (server process CPU "
          "from the first frame to the end)")
    medians = {}
    for runs, rows in results.items():
        cpu = statistics.median(r[0] for r in rows)
        wall = statistics.median(r[1] for r in rows)
        medians[runs] = cpu
        print(f"  AI partner runs={runs:<8} server CPU {cpu * 1000:8.1f} ms over {wall:5.1f} s "
              f"({100 * cpu / wall:5.2f} % of a core)   turns: {', '.join(f'{r[0] * 1000:.0f}' for r in rows)} ms")
    if medians["server"] > 0:
        print(f"  browser / server: {medians['browser'] / medians['server']:.2f}")


if __name__ == "__main__":
    main()
