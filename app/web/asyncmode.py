"""Choosing the server's async mode, and monkey-patching for it before anything else loads.

eventlet (the default) and gevent must patch the standard library before any module
imports socket, threading or ssl, so `coplay serve` / `coplay demo` call
`patch_for_server` first thing. Everything else in coplay is independent of the mode.
"""
from __future__ import annotations

import os
import warnings

ASYNC_MODES = ("eventlet", "gevent", "threading")
SERVER_COMMANDS = ("serve", "demo", "relay")


def requested_mode(argv: list[str]) -> str:
    """The --async-mode given on the command line, else $COPLAY_ASYNC_MODE, else eventlet."""
    for index, arg in enumerate(argv):
        if arg == "--async-mode" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--async-mode="):
            return arg.split("=", 1)[1]
    return os.environ.get("COPLAY_ASYNC_MODE", "eventlet")


def patch_for_server(argv: list[str]) -> None:
    """Monkey-patch for eventlet or gevent when `argv` starts a server; otherwise do nothing."""
    if not argv or argv[0] not in SERVER_COMMANDS:
        return
    mode = requested_mode(argv)
    if mode == "eventlet":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # eventlet warns on import that it is deprecated upstream
            import eventlet
        eventlet.monkey_patch()
        speed_up_eventlet_websocket()
    elif mode == "gevent":
        from gevent import monkey

        monkey.patch_all()


def apply_mask(data: bytes, mask: bytes, length: int | None = None, offset: int = 0) -> bytes:
    """XOR `data[:length]` with the 4-byte WebSocket `mask` starting at mask byte `offset`.

    Eventlet's own version builds one bytes object per byte (a few hundred µs for a
    netcode packet, the largest single cost of the relay under eventlet); this does the
    XOR on two big ints instead, with the same result.
    """
    if length is None:
        length = len(data)
    if length <= 0:
        return b""
    shift = offset % 4
    key = (bytes(mask[shift:4]) + bytes(mask[:shift])) * (length // 4 + 1)
    return (int.from_bytes(data[:length], "big") ^ int.from_bytes(key[:length], "big")).to_bytes(length, "big")


def speed_up_eventlet_websocket() -> None:
    """Give eventlet's WebSocket the fast `apply_mask` (a no-op where eventlet changed shape)."""
    try:
        from eventlet import websocket
    except ImportError:
        return
    cls = getattr(websocket, "RFC6455WebSocket", None)
    if cls is not None and isinstance(cls.__dict__.get("_apply_mask"), staticmethod):
        cls._apply_mask = staticmethod(apply_mask)
