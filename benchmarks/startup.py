"""What one arriving participant costs the server before play: bytes on the wire and server CPU.

Each arrival is a new Chromium context (empty cache) loading the demo page until Pyodide is ready
in its worker. Bytes are Playwright's `request.sizes()` (headers + encoded body) summed over all
of the page's HTTP requests; server CPU is the server process's user+system time (/proc) across the
arrivals. Two servers side by side:

- identity: no precompressed copies, as before (every page pulls ~14 MB through Flask);
- precompressed: the brotli/gzip copies `scripts/setup` makes (app/web/precompress.py).

A returning visit (a reload in the same context) shows what the cache headers save.

    python benchmarks/startup.py [--arrivals N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.loadtest.chromium import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
from app.pyodide.node import node_modules_dir  # noqa: E402
from app.web.assets import vendor_folders  # noqa: E402
from app.web.precompress import precompress, precompressed_dir  # noqa: E402
from tests.server_fixtures import Server, pid  # noqa: E402

VENDOR_FILES = ("pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
CHROMIUM_ACCEPT = "gzip, deflate, br, zstd"
READY_JS = "() => Boolean(window.coplay && window.coplay.worker && window.coplay.worker.ready)"


@dataclass
class Figures:
    bytes_per_arrival: list[int] = field(default_factory=list)
    requests_per_arrival: list[int] = field(default_factory=list)
    ready_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    reload_bytes: list[int] = field(default_factory=list)
    reload_requests: list[int] = field(default_factory=list)
    vendor_cpu_s: float = 0.0


def cpu_seconds(process_id: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{process_id}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wire_bytes(requests: list[Any]) -> int:
    total = 0
    for request in requests:
        sizes = request.sizes()
        total += sum(sizes[key] for key in ("requestHeadersSize", "requestBodySize",
                                            "responseHeadersSize", "responseBodySize"))
    return total


def load(context: Any, url: str) -> tuple[int, int, float]:
    """Open (or reload) the page until Pyodide is ready: (bytes, requests, seconds)."""
    finished: list[Any] = []

    def collect(request: Any) -> None:
        finished.append(request)

    context.on("requestfinished", collect)
    page = context.pages[0] if context.pages else context.new_page()
    started = time.monotonic()
    if page.url.startswith(url):
        page.reload()
    else:
        page.goto(f"{url}/?PROLIFIC_PID={pid()}")
    page.wait_for_function(READY_JS, timeout=180_000, polling=100)
    elapsed = time.monotonic() - started
    page.wait_for_timeout(300)   # let the last responses finish
    context.remove_listener("requestfinished", collect)
    return wire_bytes(finished), len(finished), elapsed


def measure(browser: Any, modules: Path, data: Path, arrivals: int) -> Figures:
    server = Server(["demo"], data, env={"COPLAY_NODE_MODULES": str(modules)})
    figures = Figures()
    try:
        warm = browser.new_context()   # the server's first page builds caches: not an arrival's cost
        load(warm, server.url)
        warm.close()
        before = cpu_seconds(server.process.pid)
        for _ in range(arrivals):
            context = browser.new_context()
            sent, count, seconds = load(context, server.url)
            figures.bytes_per_arrival.append(sent)
            figures.requests_per_arrival.append(count)
            figures.ready_s.append(seconds)
            context.close()
        figures.cpu_s = (cpu_seconds(server.process.pid) - before) / arrivals
        figures.vendor_cpu_s = vendor_cpu(server)
        context = browser.new_context()
        load(context, server.url)
        sent, count, _ = load(context, server.url)
        figures.reload_bytes.append(sent)
        figures.reload_requests.append(count)
        context.close()
    finally:
        server.stop()
    return figures


def vendor_cpu(server: Server, rounds: int = 10) -> float:
    """Server CPU for the vendored files alone, as a page fetches them (Chromium's Accept-Encoding)."""
    import requests

    version = requests.get(server.url + "/config.json", timeout=10).json()["pyodide_url"]
    paths = [version + name for name in VENDOR_FILES] + ["/static/vendor/socket.io.min.js"]
    before = cpu_seconds(server.process.pid)
    with requests.Session() as session:
        for _ in range(rounds):
            for path in paths:
                with session.get(server.url + path, headers={"Accept-Encoding": CHROMIUM_ACCEPT},
                                 stream=True, timeout=60) as response:
                    for _ in response.raw.stream(1 << 16, decode_content=False):
                        pass
    return (cpu_seconds(server.process.pid) - before) / rounds


def linked_node_modules(folder: Path) -> Path:
    """A node_modules/ of links to the installed packages, so each server sees its own copies folder."""
    modules = folder / "node_modules"
    for group, (source, _) in vendor_folders().items():
        link = modules / ("pyodide" if group == "pyodide" else "socket.io-client/dist")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    return modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrivals", type=int, default=5, help="pages loaded one after another per server")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    copies = precompressed_dir()
    for group, (source, names) in vendor_folders().items():   # what scripts/setup does; skipped when done
        precompress(source, copies / group, names)
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for label in ("identity", "precompressed"):
            folder = Path(scratch) / label
            modules = linked_node_modules(folder)
            if label == "precompressed":
                (folder / "node_modules.precompressed").symlink_to(copies)
            results[label] = measure(browser, modules, folder / "data", args.arrivals)
        browser.close()
    print(f"one arriving participant (demo page until Pyodide is ready; {args.arrivals} arrivals, "
          f"node_modules {node_modules_dir()})")
    rows = [
        ("bytes on the wire (MB)", lambda f: f"{statistics.median(f.bytes_per_arrival) / 1e6:.2f}"),
        ("HTTP requests", lambda f: f"{statistics.median(f.requests_per_arrival)}"),
        ("server CPU (ms)", lambda f: f"{f.cpu_s * 1000:.0f}"),
        ("  of it, vendor files (ms)", lambda f: f"{f.vendor_cpu_s * 1000:.0f}"),
        ("time to Pyodide ready (s)", lambda f: f"{statistics.median(f.ready_s):.2f}"),
        ("reload: bytes (MB)", lambda f: f"{f.reload_bytes[0] / 1e6:.3f}"),
        ("reload: HTTP requests", lambda f: f"{f.reload_requests[0]}"),
    ]
    print(f"{'':28}{'identity':>14}{'precompressed':>16}")
    for name, show in rows:
        print(f"{name:28}{show(results['identity']):>14}{show(results['precompressed']):>16}")
    old, new = results["identity"], results["precompressed"]
    print(f"100 arrivals: {statistics.median(old.bytes_per_arrival) * 100 / 1e9:.2f} GB -> "
          f"{statistics.median(new.bytes_per_arrival) * 100 / 1e9:.2f} GB; server CPU "
          f"{old.cpu_s * 100:.1f} s -> {new.cpu_s * 100:.1f} s")


if __name__ == "__main__":
    main()
