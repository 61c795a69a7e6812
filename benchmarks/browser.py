"""Browser-side costs in headless Debian Chromium, with the real worker and server.

Prints: Pyodide cold start in a Web Worker, bundle load, the cost of one match tick
(two workers playing Pong through the server), and an 8-frame rollback done as one
BATCH message versus the same work as 9 separate worker messages, with the ratio.

    python benchmarks/browser.py [--rounds N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.loadtest.chromium import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="coplay-bench-"))
    server = Server(["demo"], folder / "data")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(server.url + "/health")
            result = page.evaluate(BENCH_JS, {"rounds": args.rounds})
            ticks = match_ticks(browser, server.url)
            browser.close()
    finally:
        server.stop()
    batch, nine = median(result["batch_ms"]), median(result["nine_ms"])
    print(f"Chromium {CHROMIUM}; Pyodide 0.27.7 in a module Web Worker; medians of {args.rounds} rounds")
    print(f"  Pyodide cold start (INIT)          {result['init_ms']:8.0f} ms")
    print(f"  bundle fetch                       {result['fetch_bundle_ms']:8.0f} ms")
    print(f"  bundle load ({result['bundle_files']} files, imports)  {result['load_ms']:8.0f} ms")
    print(f"  Pong match tick (worker, Python)   {median(ticks):8.3f} ms median, "
          f"{sorted(ticks)[int(len(ticks) * 0.99)]:.3f} ms p99 over {len(ticks)} ticks")
    print(f"  8-frame rollback, one BATCH        {batch:8.3f} ms")
    print(f"  same work as 9 messages            {nine:8.3f} ms")
    print(f"  ratio (9 messages / one batch)     {nine / batch:8.2f}x")


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
    for page in pages:  # the Pong match is over once the kitchen scene shows
        page.wait_for_function("window.coplay && window.coplay.scene.id === 'kitchen'", timeout=180_000)
    return [t for page in pages for t in page.evaluate("window.__ticks")]


if __name__ == "__main__":
    main()
