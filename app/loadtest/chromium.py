"""Where headless Chromium lives and how it is started, for the browser load test, the browser
tests and benchmarks (one definition). Debian's chromium is used; never `playwright install`."""
from __future__ import annotations

import os

CHROMIUM = os.environ.get("COPLAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
