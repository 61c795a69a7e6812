"""The event loop the wire-level load generator runs on: uvloop's when it is installed, else asyncio's.

uvloop (libuv, written in C) runs a transport's reads and writes and its own bookkeeping in C, so
one generator core offers more matches (benchmarks/wire_generator.py measures by how much). It is a
dependency on the platforms it supports; elsewhere, or when it is missing, asyncio's loop does the
same work, only slower.
"""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

try:
    import uvloop
except ImportError:   # not installed (e.g. on Windows, which uvloop does not support)
    uvloop = None   # type: ignore[assignment]

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A fresh loop: uvloop's when available."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on a loop from `new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


def loop_name() -> str:
    """Which loop `new_event_loop` makes ("uvloop" or "asyncio"), for reports."""
    return "uvloop" if uvloop is not None else "asyncio"
