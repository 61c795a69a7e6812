"""A hostile participant for the flood tests: raw Engine.IO/Socket.IO frames over a WebSocket.

    python tests/flooder.py URL COOKIE SECONDS RATE

Sends RATE frames a second for SECONDS (bad `advance` payloads, events named `connect`,
`disconnect` and `message`, unknown names, malformed and binary frames, now and then an
oversized one), reconnecting with the same cookie whenever the server closes the socket.
Prints a JSON summary on stdout. Runs in its own process so that its sending does not
share a GIL with the honest participants it is measured beside.
"""
from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from typing import Any

import websocket

BAD_ADVANCES = [
    '42["advance",{"index":"x"}]',
    '42["advance",{"index":0,"data":[]}]',
    '42["advance",null]',
    '42["advance",{"index":7,"data":{}}]',
    '42["advance",{"index":0,"data":{"accept":"maybe"},"extra":1}]',
]
OTHERS: list[str | bytes] = [
    '42["connect",{}]',
    '42["disconnect"]',
    '42["connect"]',
    '42["message","hello"]',
    '42["no_such_event",{"a":1}]',
    '42["' + "x" * 200 + '"]',
    '42["packet",{"match":"m","episode":0,"to":"s1","data":"AAAA"}]',
    '42["ready",{"index":99}]',
    '42[',
    '42123',
    '42"abc"',
    '42{}',
    '42[]',
    '42[1,2]',
    '40',
    '43[]',
    '44{}',
    '451-["advance",{"_placeholder":true,"num":0}]',
    '4x',
    '9',
    b"\x00\xffbinary",
]
# Mostly bad `advance` payloads (each was a database write), the other kinds in between.
FRAMES: list[str | bytes] = [frame for other in OTHERS for frame in (*BAD_ADVANCES, *BAD_ADVANCES, other)]
OVERSIZED = ['42["advance",{"index":0,"data":{"x":"' + "a" * 70_000 + '"}}]',
             '42["advance",{"index":0,"data":{"x":"' + "b" * 200_000 + '"}}]']
BATCH_SECONDS = 0.01


class Connection:
    """One Engine.IO session over a WebSocket, connected to the default namespace."""

    def __init__(self, url: str, cookie: str) -> None:
        address = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(address, header=[f"Cookie: {cookie}"], timeout=10)
        opened = self.ws.recv()
        assert isinstance(opened, str) and opened.startswith("0"), opened
        self.ws.send("40")
        self.errors = 0
        self.closed = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while True:
                message = self.ws.recv()
                if message == "2":
                    self.ws.send("3")
                elif isinstance(message, str) and message.startswith('42["error"'):
                    self.errors += 1
                elif not message:
                    break
        except Exception:  # noqa: BLE001 - any failure means the server closed the socket
            pass
        self.closed.set()

    def send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self.ws.send_binary(frame)
        else:
            self.ws.send(frame)

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:  # noqa: BLE001 - closing a dead socket
            pass
        self.reader.join(timeout=2)


def flood(url: str, cookie: str, seconds: float, rate: float) -> dict[str, Any]:
    """Send `rate` frames a second for `seconds`; the figures of what happened."""
    frames = itertools.cycle(FRAMES)
    per_batch = max(1, round(rate * BATCH_SECONDS))
    sent = errors = connections = refused_connections = 0
    started = time.monotonic()
    oversized_at = [started + seconds * 0.4, started + seconds * 0.7]
    connection: Connection | None = None
    next_batch = started
    while time.monotonic() - started < seconds:
        if connection is None or connection.closed.is_set():
            if connection is not None:
                errors += connection.errors
                connection.close()
            try:
                connection = Connection(url, cookie)
                connections += 1
            except Exception:  # noqa: BLE001 - refused or reset: try again shortly
                refused_connections += 1
                connection = None
                time.sleep(0.05)
                continue
        try:
            if oversized_at and time.monotonic() >= oversized_at[0]:
                oversized_at.pop(0)
                connection.send(OVERSIZED[len(oversized_at) % 2])
                sent += 1
            for _ in range(per_batch):
                connection.send(next(frames))
                sent += 1
        except Exception:  # noqa: BLE001 - the server closed the socket: reconnect
            connection.closed.set()
            continue
        next_batch += BATCH_SECONDS
        time.sleep(max(0.0, next_batch - time.monotonic()))
    elapsed = time.monotonic() - started
    if connection is not None:
        time.sleep(0.5)   # let the last error replies arrive
        errors += connection.errors
        connection.close()
    return {"sent": sent, "seconds": round(elapsed, 2), "connections": connections,
            "refused_connections": refused_connections, "errors_received": errors}


if __name__ == "__main__":
    print(json.dumps(flood(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))), flush=True)
