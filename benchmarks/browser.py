"""Browser-side costs in headless Debian Chromium, with the real worker and server.

Prints: Pyodide cold start in a Web Worker, bundle load, the cost of one match tick
(two workers playing Pong through the server: median and p99), an 8-frame rollback done
as one BATCH message (median and p99) versus the same work as 9 separate worker messages, with
the ratio, and reload-to-seat: a page that reloads mid-match (human-human Pong in two pages)
until its worker plays its seat again, with where that time goes in the reloaded page.

    python benchmarks/browser.py [--rounds N] [--baseline DIR] [--repeat R]

`--baseline DIR` runs the same measurements against DIR (an older checkout of coplay: its server,
worker and bundled netcode), in turns with this checkout, each turn a fresh process and server, and
prints both side by side: medians over R turns. The machine's load shows in every figure: run on a
quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
# `--code DIR` (used by --baseline) runs DIR's server, worker and netcode under this script.
CODE = Path(sys.argv[sys.argv.index("--code") + 1]) if "--code" in sys.argv[:-1] else HERE.parents[1]
sys.path.insert(0, str(CODE))

from app.loadtest.chromium import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
from app.data.recording import read_recording  # noqa: E402
from tests.server_fixtures import Server, pid  # noqa: E402

# Runs in a page on the server's origin: start a worker, time INIT and LOAD, then time
# an 8-frame rollback as one BATCH against 9 STEP/BATCH messages doing the same frames.
BENCH_JS = """
async ({rounds}) => {
  const worker = new Worker("/static/worker.js", {type: "module"});
  let next = 1;
  const waiting = new Map();
  worker.onmessage = e => {
    const m = e.data;
    if (m.id && waiting.has(m.id)) { waiting.get(m.id)(m); waiting.delete(m.id); }
  };
  const ask = (type, fields = {}) => new Promise((resolve, reject) => {
    const id = next++;
    waiting.set(id, m => m.type === "ERROR" ? reject(new Error(m.message + "\\n" + m.traceback)) : resolve(m.value));
    worker.postMessage({type, id, ...fields});
  });
  const t0 = performance.now();
  await ask("INIT", {indexURL: "/static/vendor/pyodide/"});
  const t1 = performance.now();
  const bundle = await (await fetch("/bundle.json")).json();
  const t2 = performance.now();
  await ask("LOAD", {bundle});
  const t3 = performance.now();
  const game = {game: "game.games.pong:Pong", config: {max_score: 1000000, max_frames: 10000000}, seed: 1};
  const advance = f => ({op: "advance", frame: f, inputs: {left: f % 3, right: (f + 1) % 3}, status: {}});
  await ask("BATCH", {requests: [{op: "save", frame: 0, checksum: false}], ...game});
  const batch = [{op: "load", frame: 0}];
  for (let f = 0; f < 8; f++) batch.push(advance(f), {op: "save", frame: f + 1, checksum: f === 7});
  const one = [], nine = [];
  for (let r = 0; r < rounds; r++) {
    let s = performance.now();
    await ask("BATCH", {requests: batch});
    one.push(performance.now() - s);
    s = performance.now();
    await ask("BATCH", {requests: [{op: "load", frame: 0}]});
    for (let f = 0; f < 8; f++) {
      await ask("BATCH", {requests: [advance(f), {op: "save", frame: f + 1, checksum: f === 7}]});
    }
    nine.push(performance.now() - s);
  }
  await ask("TERMINATE");
  return {init_ms: t1 - t0, fetch_bundle_ms: t2 - t1, load_ms: t3 - t2, bundle_files: Object.keys(bundle.files).length,
          batch_ms: one, nine_ms: nine};
}
"""


def median(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


FIGURES = (("tick_median", "match tick, median"), ("tick_p99", "match tick, p99"),
           ("batch_median", "8-frame rollback BATCH, median"), ("batch_p99", "8-frame rollback BATCH, p99"),
           ("nine_median", "same as 9 messages, median"))
# Reload-to-seat and its parts in the reloaded page, in ms (static/state.js: coplay.pyodide, coplay.resume).
RELOAD_FIGURES = (("reload_ms", "reload-to-seat"), ("reload_page_ms", "  page and worker start"),
                  ("reload_init_ms", "  Pyodide cold start (INIT)"), ("reload_load_ms", "  bundle load (LOAD)"),
                  ("reload_back_ms", "  then until it plays, of which"),
                  ("reload_rejoin_ms", "    ready until resumed"),
                  ("reload_resim_ms", "    re-simulation to the present"), ("reload_rest_ms", "    until the first frame"))
RELOAD_AT_FRAME = 90
RELOAD_MATCH_FRAMES = 2400   # 40 s: a slow machine's reload must end within the match and the grace period
RELOAD_GRACE_S = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="an older checkout measured in turns with this one")
    parser.add_argument("--repeat", type=int, default=3, help="turns of each checkout with --baseline (default 3)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        compare(args.baseline.resolve(), args.rounds, args.repeat)
        return
    figures = measure(args.rounds)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"Chromium {CHROMIUM}; Pyodide 0.27.7 in a module Web Worker; medians of {args.rounds} rounds")
    print(f"  Pyodide cold start (INIT)          {figures['init_ms']:8.0f} ms")
    print(f"  bundle fetch                       {figures['fetch_bundle_ms']:8.0f} ms")
    print(f"  bundle load ({figures['bundle_files']} files, imports)  {figures['load_ms']:8.0f} ms")
    print(f"  Pong match tick (worker, Python)   {figures['tick_median']:8.3f} ms median, "
          f"{figures['tick_p99']:.3f} ms p99 over {figures['ticks']} ticks")
    print(f"  8-frame rollback, one BATCH        {figures['batch_median']:8.3f} ms median, "
          f"{figures['batch_p99']:.3f} ms p99")
    print(f"  same work as 9 messages            {figures['nine_median']:8.3f} ms")
    print(f"  ratio (9 messages / one batch)     {figures['nine_median'] / figures['batch_median']:8.2f}x")
    print(f"  a page reloading mid-match, until its worker plays its seat again (stand-in for "
          f"{figures['reload_stand_in_frames']} frames):")
    for key, label in RELOAD_FIGURES:
        print(f"  {label:34} {_ms(figures.get(key))}")


def _ms(value: float | None) -> str:
    return f"{'–':>6}   " if value is None else f"{value:6.0f} ms "


def compare(baseline: Path, rounds: int, repeat: int) -> None:
    """This checkout and `baseline` in turns, each a fresh process; medians side by side."""
    now: list[dict[str, Any]] = []
    before: list[dict[str, Any]] = []
    for _ in range(repeat):
        for turns, code in ((now, HERE.parents[1]), (before, baseline)):
            command = [sys.executable, str(HERE), "--rounds", str(rounds), "--json", "--code", str(code)]
            done = subprocess.run(command, cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                                  capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"the turn of {code} failed:\n" + "\n".join(done.stderr.splitlines()[-15:]))
            turns.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"Chromium {CHROMIUM}; Pyodide 0.27.7; median of {repeat} turns each; baseline: {baseline}")
    print(f"  {'':32} {'now':>9} {'baseline':>9} {'now/baseline':>13}")
    for key, label in FIGURES:
        new, old = median([t[key] for t in now]), median([t[key] for t in before])
        print(f"  {label:32} {new:6.3f} ms {old:6.3f} ms {new / old:12.2f}x")
    for key, label in RELOAD_FIGURES:   # an older checkout may not know a part
        news, olds = [t[key] for t in now if t.get(key) is not None], [t[key] for t in before if t.get(key) is not None]
        new_ms, old_ms = (median(news) if news else None), (median(olds) if olds else None)
        ratio = f"{new_ms / old_ms:12.2f}x" if new_ms and old_ms else ""
        print(f"  {label:32} {_ms(new_ms)}{_ms(old_ms)}{ratio}")


def measure(rounds: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="coplay-bench-"))
    server = Server(["demo"], folder / "data")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(server.url + "/health")
            result = page.evaluate(BENCH_JS, {"rounds": rounds})
            ticks = match_ticks(browser, server.url)
            reload = reload_to_seat(browser, folder)
            browser.close()
    finally:
        server.stop()
    return {"init_ms": result["init_ms"], "fetch_bundle_ms": result["fetch_bundle_ms"], "load_ms": result["load_ms"],
            "bundle_files": result["bundle_files"], "ticks": len(ticks), "tick_median": median(ticks),
            "tick_p99": p99(ticks), "batch_median": median(result["batch_ms"]), "batch_p99": p99(result["batch_ms"]),
            "nine_median": median(result["nine_ms"]), **reload}


def match_ticks(browser: object, url: str) -> list[float]:
    """Per-tick Python time (STATE.tick_ms) of two autopilot pages playing the demo's Pong."""
    pages = []
    for _ in range(2):
        context = browser.new_context()  # type: ignore[attr-defined]
        page = context.new_page()
        page.add_init_script("""
          window.__ticks = [];
          const Original = window.Worker;
          window.Worker = class extends Original {
            constructor(...args) {
              super(...args);
              this.addEventListener("message", e => { if (e.data.type === "STATE") window.__ticks.push(e.data.tick_ms); });
            }
          };
        """)
        page.goto(f"{url}/?PROLIFIC_PID={pid()}&autopilot=1")
        pages.append(page)
    deadline = time.monotonic() + 600
    for page in pages:  # the Pong match is over once the kitchen scene shows (polled: the page's CSP forbids eval)
        while not page.evaluate("() => Boolean(window.coplay && window.coplay.scene.id === 'kitchen')"):
            if time.monotonic() > deadline:
                raise TimeoutError("the demo's Pong match did not end within 600 s")
            page.wait_for_timeout(250)
    return [t for page in pages for t in page.evaluate("window.__ticks")]


def reload_to_seat(browser: Any, folder: Path) -> dict[str, Any]:
    """Page A of a two-page Pong (40 s long; a stand-in holds a dropped seat for 60 s) reloads at frame
    RELOAD_AT_FRAME: the time until its worker plays again, and its parts from the reloaded page's
    clock (navigation start = 0)."""
    from tests.test_browser import start_server

    (folder / "reload").mkdir()
    server = start_server(folder / "reload", max_frames=RELOAD_MATCH_FRAMES, max_score=1000, grace_s=RELOAD_GRACE_S)
    contexts = []
    try:
        pages = []
        for _ in range(2):
            contexts.append(context := browser.new_context())
            pages.append(page := context.new_page())
            page.goto(f"{server.url}/?PROLIFIC_PID={pid()}&autopilot=1")
        state = _poll(pages[0], lambda s: (s.get("match") or {}).get("frame", 0) >= RELOAD_AT_FRAME, 300)
        match = state["match"]["match"]
        reloaded = time.monotonic()
        pages[0].reload()
        state = _poll(pages[0], lambda s: (s.get("match") or {}).get("match") == match
                      and (s["match"].get("frame") or 0) > 0, 120)
        playing = time.monotonic()
        _poll(pages[1], lambda s: (s.get("scene") or {}).get("kind") == "end", 120)
    finally:
        for context in contexts:
            context.close()
        server.stop()
    events = read_recording(str(folder / "reload" / "data" / "browser" / "recordings" / f"{match}.jsonl")).events
    segments = [e["frame"] for e in events if e["kind"] == "seat_changed"]
    py, resume = state.get("pyodide") or {}, state.get("resume") or {}
    marks = [0, py.get("startMs"), py.get("readyMs"), py.get("loadedMs"), resume.get("startMs"), resume.get("playingMs")]
    parts = [b - a if a is not None and b is not None else None for a, b in zip(marks, marks[1:])]
    total = (playing - reloaded) * 1000
    loaded = py.get("loadedMs")
    return {"reload_ms": total, "reload_stand_in_frames": segments[1] - segments[0] if len(segments) > 1 else None,
            **dict(zip(("reload_page_ms", "reload_init_ms", "reload_load_ms", "reload_rejoin_ms", "reload_resim_ms"),
                       parts)),
            "reload_back_ms": None if loaded is None else total - loaded,
            "reload_rest_ms": total - sum(p for p in parts if p is not None) if None not in parts else None}


def _poll(page: Any, done: Any, timeout: float) -> dict[str, Any]:
    """window.coplay of `page` once `done(it)` (every 50 ms; a page reloading answers once it is back)."""
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            state = page.evaluate("() => JSON.parse(JSON.stringify(window.coplay || {}))")
        except Exception:  # noqa: BLE001 - the page is between documents
            state = {}
        if done(state):
            return state
        page.wait_for_timeout(50)
    raise TimeoutError(f"the page did not get there within {timeout} s: window.coplay = {state}")


if __name__ == "__main__":
    main()
