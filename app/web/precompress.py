"""Brotli and gzip copies of the vendored files, made once by `scripts/setup`, served by app/web/server.py.

A page load fetches ~14 MB of Pyodide; compressed it is ~3 MB (brotli) and costs the server no
CPU per request. The copies live beside node_modules/ in `node_modules.precompressed/`
(ignored by git), one folder per vendored package:

    node_modules.precompressed/pyodide/pyodide.asm.wasm.br
    node_modules.precompressed/pyodide/pyodide.asm.wasm.gz

A copy carries its original's modification time, so it is up to date exactly when the two times
match: set-up skips it then, and the server never serves a copy of an older original (after
`npm ci` it serves the original until set-up runs again). Without the `brotli` package set-up
makes the gzip copies only; without any copies the server sends files as they are.

    python -m app.web.precompress      # what scripts/setup runs
"""
from __future__ import annotations

import gzip
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.pyodide.node import node_modules_dir

# Already-compressed formats (zip, wheels) gain ~2 %: not worth a copy.
COMPRESSIBLE = (".wasm", ".js", ".mjs", ".json", ".map", ".html", ".ts", ".txt", ".py", ".tar")
MIN_SIZE = 1024   # smaller files fit in a packet or two anyway


@dataclass(frozen=True)
class Encoding:
    """A Content-Encoding and the suffix of its copies."""

    name: str
    suffix: str


BROTLI = Encoding("br", ".br")
GZIP = Encoding("gzip", ".gz")
ENCODINGS = (BROTLI, GZIP)   # the server's preference, best first


def precompressed_dir() -> Path:
    """Where the copies live: beside node_modules/ (or $COPLAY_NODE_MODULES)."""
    modules = node_modules_dir()
    return modules.parent / (modules.name + ".precompressed")


def compressor(encoding: Encoding, brotli_quality: int = 11) -> Callable[[bytes], bytes] | None:
    """The function making `encoding`'s bytes, or None when its package is not installed
    (brotli's best quality, 11, takes ~30 s for Pyodide's wasm; tests use a faster one)."""
    if encoding is GZIP:
        return lambda data: gzip.compress(data, compresslevel=9, mtime=0)
    try:
        import brotli
    except ImportError:
        return None
    return lambda data: bytes(brotli.compress(data, quality=brotli_quality))


def worth_compressing(path: Path) -> bool:
    return path.name.endswith(COMPRESSIBLE) and path.stat().st_size >= MIN_SIZE


def copy_path(target: Path, name: str, encoding: Encoding) -> Path:
    return target / (name + encoding.suffix)


def is_current(original: Path, copy: Path) -> bool:
    """Whether `copy` was made from `original` as it is now (same modification time)."""
    try:
        return copy.stat().st_mtime_ns == original.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def current_copy(source: Path, target: Path, name: str, encoding: Encoding) -> Path | None:
    """The up-to-date `encoding` copy of `source/name` in `target`, or None."""
    copy = copy_path(target, name, encoding)
    return copy if is_current(source / name, copy) else None


def precompress(source: Path, target: Path, names: list[str] | None = None, brotli_quality: int = 11) -> list[Path]:
    """Make the missing or stale copies of the compressible files of `source` (or just `names`)
    in `target`; returns the copies written. Running it again writes nothing."""
    written = []
    candidates = [source / name for name in names] if names is not None else sorted(source.iterdir())
    for original in candidates:
        if not original.is_file() or not worth_compressing(original):
            continue
        for encoding in ENCODINGS:
            copy = copy_path(target, original.name, encoding)
            compress = compressor(encoding, brotli_quality)
            if compress is None or is_current(original, copy):
                continue
            target.mkdir(parents=True, exist_ok=True)
            _write_atomically(copy, compress(original.read_bytes()))
            stat = original.stat()
            os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            written.append(copy)
    return written


def _write_atomically(path: Path, data: bytes) -> None:
    """A half-written copy must never look current: write aside, then rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)   # as readable as npm's originals (mkstemp makes 0600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main() -> int:
    from app.web import assets   # assets imports this module

    folders = assets.vendor_folders()
    if not folders:
        print("precompress: no vendored packages installed (run npm ci first)", file=sys.stderr)
        return 1
    if compressor(BROTLI) is None:
        print("precompress: the brotli package is missing; making gzip copies only", file=sys.stderr)
    for group, (source, names) in folders.items():
        written = precompress(source, precompressed_dir() / group, names)
        print(f"precompress: {group}: {len(written)} copies made" if written
              else f"precompress: {group}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
