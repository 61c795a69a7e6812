"""What the page loads besides static/: Pyodide, the Socket.IO client and onnxruntime-web from node_modules/.

`scripts/setup` installs both with npm (package.json) and makes their brotli/gzip copies
(app/web/precompress.py). The server serves them under `/static/vendor/`, so a study needs no
CDN; `--pyodide-url` may point browsers at another Pyodide index URL instead (the page reads it
from `/config.json`). By default the page loads Pyodide from a URL naming its version,
`/static/vendor/pyodide@0.27.7/`, which browsers may cache for good (an upgrade changes the URL).
The worker loads onnxruntime-web (for ONNX policies with runs="browser") from
`/static/vendor/onnxruntime-web@VERSION/` (the bundle names it), likewise immutable.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from app.pyodide.bundle import ONNXRUNTIME_WEB, ONNXRUNTIME_WEB_FILES, onnxruntime_web_folder, onnxruntime_web_version
from app.pyodide.node import node_modules_dir, pyodide_dir
from app.pyodide.packages import PackageSource
from app.web.precompress import ENCODINGS, Encoding, current_copy, precompressed_dir

UNVERSIONED_PYODIDE_URL = "/static/vendor/pyodide/"
DEFAULT_PYODIDE_URL = UNVERSIONED_PYODIDE_URL   # when no local Pyodide tells its version
SOCKET_IO_FILES = ("socket.io.min.js", "socket.io.min.js.map")
# Unversioned URLs: the files change only with package-lock.json; browsers revalidate (ETag) after a week.
VENDOR_MAX_AGE = 7 * 24 * 3600
# Versioned URLs never change content: a year, `immutable` (no revalidation on reload).
IMMUTABLE_MAX_AGE = 365 * 24 * 3600
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


def pyodide_version() -> str | None:
    """The installed Pyodide's version (from its package.json), or None when it is not installed."""
    folder = pyodide_folder()
    if folder is None:
        return None
    try:
        version = json.loads((folder / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version if isinstance(version, str) and version.replace(".", "").isalnum() else None


def default_pyodide_url() -> str:
    """Where the page loads Pyodide from by default: this server's copy, under its version when known."""
    version = pyodide_version()
    return f"/static/vendor/pyodide@{version}/" if version else UNVERSIONED_PYODIDE_URL


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


def vendor_folders() -> dict[str, tuple[Path, list[str] | None]]:
    """The installed vendored packages: group name -> (folder, the files served or None for all)."""
    folders: dict[str, tuple[Path, list[str] | None]] = {}
    pyodide = pyodide_folder()
    if pyodide is not None:
        folders["pyodide"] = (pyodide, None)
    socket_io = socket_io_folder()
    if socket_io is not None:
        folders["socket.io"] = (socket_io, list(SOCKET_IO_FILES))
    onnxruntime_web = onnxruntime_web_folder()
    if onnxruntime_web is not None:   # for ONNX policies in the worker (app/pyodide/bundle.py names the URL)
        folders[ONNXRUNTIME_WEB] = (onnxruntime_web, list(ONNXRUNTIME_WEB_FILES))
    return folders


def onnxruntime_web_file(version: str, name: str) -> tuple[Path | None, bool]:
    """(onnxruntime-web's folder or None when not installed, whether `name` of `version` is served there):
    only the files the worker loads, only under the installed version."""
    folder = onnxruntime_web_folder()
    return folder, folder is None or (version == onnxruntime_web_version() and name in ONNXRUNTIME_WEB_FILES)


def compressed_copy(group: str, folder: Path, name: str,
                    accepts: Callable[[str], float]) -> tuple[Path, Encoding] | None:
    """The best up-to-date precompressed copy of `folder/name` the client accepts (`accepts` gives the
    quality of a content coding, as werkzeug's `request.accept_encodings.quality`), or None."""
    wanted = sorted((encoding for encoding in ENCODINGS if accepts(encoding.name) > 0),
                    key=lambda encoding: -accepts(encoding.name))   # stable: ties keep ENCODINGS' order
    for encoding in wanted:
        copy = current_copy(folder, precompressed_dir() / group, name, encoding)
        if copy is not None:
            return copy, encoding
    return None


def missing_copies() -> list[str]:
    """The vendored packages with no precompressed copies at all (served uncompressed)."""
    return [group for group in vendor_folders()
            if not any((precompressed_dir() / group).glob("*" + ENCODINGS[-1].suffix))]


def package_source(packages_dir: str | None, experiment_file: str | None, pyodide_url: str) -> PackageSource:
    """Where the experiment's `Match(packages=)` come from (app/pyodide/packages.py): `packages_dir`, else
    `packages/` beside the experiment file; Pyodide's own index when the page loads Pyodide from elsewhere."""
    folder = Path(packages_dir) if packages_dir else (
        Path(experiment_file).resolve().parent / "packages" if experiment_file else None)
    return PackageSource(folder=folder.resolve() if folder else None, pyodide_folder=pyodide_folder(),
                         remote_index=not pyodide_url.startswith("/"))
