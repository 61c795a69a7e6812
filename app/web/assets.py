"""What the page loads besides static/: Pyodide and the Socket.IO client from node_modules/.

`scripts/setup` installs both with npm (package.json). The server serves them under
`/static/vendor/`, so a study needs no CDN; `--pyodide-url` may point browsers at
another Pyodide index URL instead (the page reads it from `/config.json`).
"""
from __future__ import annotations

from pathlib import Path

from app.pyodide.node import node_modules_dir, pyodide_dir

DEFAULT_PYODIDE_URL = "/static/vendor/pyodide/"
SOCKET_IO_FILES = ("socket.io.min.js", "socket.io.min.js.map")
# The vendored files change only with package-lock.json; browsers revalidate (ETag) after a week.
VENDOR_MAX_AGE = 7 * 24 * 3600
SETUP_HINT = "run scripts/setup in the coplay checkout (it installs the npm packages into node_modules/)"

MIME_TYPES = {
    ".wasm": "application/wasm",   # WebAssembly.instantiateStreaming insists on it
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".zip": "application/zip",
    ".json": "application/json",
    ".map": "application/json",
    ".whl": "application/zip",
    ".tar": "application/x-tar",
    ".html": "text/html",
    ".d.ts": "text/plain",
}


def mime_type(name: str) -> str:
    """The Content-Type a vendored file is served with."""
    for suffix, kind in MIME_TYPES.items():
        if name.endswith(suffix):
            return kind
    return "application/octet-stream"


def pyodide_folder() -> Path | None:
    """The local Pyodide distribution, or None when it is not installed."""
    folder = pyodide_dir()
    return folder if (folder / "pyodide.mjs").is_file() else None


def socket_io_folder() -> Path | None:
    """The Socket.IO client's dist/ folder, or None when it is not installed."""
    folder = node_modules_dir() / "socket.io-client" / "dist"
    return folder if (folder / SOCKET_IO_FILES[0]).is_file() else None


def missing_message(what: str) -> str:
    return f"{what} is not installed on this server: {SETUP_HINT}.\n"


def check_pyodide_url(url: str) -> str:
    """A Pyodide index URL (an absolute http(s) URL or a path on this server), ending with '/'."""
    if not url.startswith(("http://", "https://", "/")) or any(c.isspace() for c in url):
        raise ValueError(f"{url!r} is not a Pyodide index URL: give an http(s) URL or a path starting with '/'")
    return url if url.endswith("/") else url + "/"


def missing_assets(self_hosted_pyodide: bool = True) -> list[str]:
    """What of the vendored assets the page needs is not installed (empty when all is there)."""
    missing = []
    if self_hosted_pyodide and pyodide_folder() is None:
        missing.append(f"Pyodide ({pyodide_dir()})")
    if socket_io_folder() is None:
        missing.append(f"the Socket.IO client ({node_modules_dir() / 'socket.io-client'})")
    return missing
