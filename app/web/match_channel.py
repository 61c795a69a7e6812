"""The match channel's WebSocket endpoint (`/match-ws`), a WSGI dispatcher in front of the app.

One WebSocket per seat holder carries only netcode packets (docs/protocol.md): the first frame is
the ticket of the holder's latest `match_start`, the server answers `ok` (or closes: 4401 bad or
expired ticket, 4410 the seat is no longer theirs), then every frame goes straight to
`Hub.channel_frame`. Frames to the client are queued by the Hub (under its lock, from any green
thread or thread) and written by the channel's own writer, so a client that stops reading never
blocks the relay.

The WebSocket implementation is Engine.IO's for the server's async mode (eventlet's WebSocketWSGI,
simple-websocket under gevent and threading), so every supported mode serves the channel. Under
eventlet that WebSocket only takes the ticket: the channel's frames are then read and written by
app/web/channel_pump.py, one green thread for every channel (several times cheaper per packet).
"""
from __future__ import annotations

import logging
import socket
from collections import deque
from typing import Any, Callable, Iterable

from app.live.channel import CHANNEL_PATH, CLOSE_BAD_TICKET, CLOSE_FLOODING, ChannelRefused
from app.live.hub import Hub
from app.live.tickets import TicketError

log = logging.getLogger("coplay.server")
REFUSED_PAUSE_S = 0.001     # a frame refused for the rate: its reader waits this long (as app/web/socket_gate.py)
MAX_QUEUED_FRAMES = 4096    # frames waiting for a client that does not read: past this, the channel closes
RECV_BYTES = 64 * 1024
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class MatchChannelEndpoint:
    """WSGI middleware: `/match-ws` opens a match channel, everything else goes to `app`.

    `eio` is the Engine.IO server (its async mode gives the WebSocket class, green threads and events)."""

    def __init__(self, app: WSGIApp, hub: Hub, eio: Any, path: str = CHANNEL_PATH) -> None:
        self.app = app
        self.hub = hub
        self.eio = eio
        self.path = path
        self.pump: Any = None
        if getattr(eio, "async_mode", None) == "eventlet":
            from app.web.channel_pump import ChannelPump

            self.pump = ChannelPump(hub, eio.start_background_task)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path:
            return self.app(environ, start_response)
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"The match channel is a WebSocket: open it with the URL of match_start's channel.\n"]
        websocket_class = self.eio._async["websocket"]
        if self.pump is not None:
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)   # the pump speaks no extension (no deflate)
            return websocket_class(self._serve_pumped, self.eio)(environ, start_response)
        return websocket_class(self._serve, self.eio)(environ, start_response)

    def _serve_pumped(self, ws: Any) -> None:
        """One channel under eventlet: the ticket here, then the pump serves it; returns when it is done."""
        from app.web.channel_pump import PumpLink

        _no_delay(ws)
        _buffer_reads(ws)
        buffered = ws.socket
        ticket = ws.wait()
        if ticket is None:
            return
        link = PumpLink(self.pump, getattr(buffered, "fd", buffered), int(self.eio.max_http_buffer_size))
        try:
            link.channel = self.hub.open_channel(link, ticket)
        except TicketError as error:
            link.close(CLOSE_BAD_TICKET, error.message)
        except ChannelRefused as error:
            link.close(error.close_code, error.message)
        self.pump.adopt(link, buffered.leftover() if isinstance(buffered, _BufferedSocket) else b"")
        link.done.wait()
        ws.websocket_closed = True   # the pump sent the close frame, or the connection broke

    def _serve(self, ws: Any) -> None:
        """One channel, on its own green thread or thread: the ticket, then frames until it closes."""
        link = _Link(ws, self.eio)
        _no_delay(ws)
        _buffer_reads(ws)
        try:
            channel = self.hub.open_channel(link, ws.wait())
        except TicketError as error:
            link.close(CLOSE_BAD_TICKET, error.message)
            link.run_writer()
            return
        except ChannelRefused as error:
            link.close(error.close_code, error.message)
            link.run_writer()
            return
        link.start_writer()
        try:
            while True:
                raw = ws.wait()
                if raw is None:
                    break
                if not self.hub.channel_frame(channel, raw):
                    self.eio.sleep(REFUSED_PAUSE_S)
        except OSError:
            pass   # the connection broke
        finally:
            self.hub.channel_closed(channel)
            link.close(1000, "")
            link.stop()


class _Link:
    """A channel's outgoing side (app.live.channel.ChannelLink): frames queue here, a writer sends them."""

    def __init__(self, ws: Any, eio: Any) -> None:
        self.ws = ws
        self.eio = eio
        self.queue: deque[str] = deque()
        self.closing: tuple[int, str] | None = None
        self.done = False
        self.wake = eio.create_event()

    def send(self, text: str) -> None:
        if self.closing is not None:
            return
        if len(self.queue) >= MAX_QUEUED_FRAMES:
            self.close(CLOSE_FLOODING, "the client does not read its frames")
            return
        self.queue.append(text)
        self.wake.set()

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            self.wake.set()

    def stop(self) -> None:
        self.done = True
        self.wake.set()

    def start_writer(self) -> None:
        self.eio.start_background_task(self.run_writer)

    def run_writer(self) -> None:
        """Send queued frames until closing (then close the WebSocket) or stopped."""
        queue, ws = self.queue, self.ws
        try:
            while True:
                while queue:
                    ws.send(queue.popleft())
                if self.closing is not None:
                    _close(ws, *self.closing)
                    return
                if self.done:
                    return
                self.wake.wait()
                self.wake.clear()
        except OSError:
            pass   # the connection broke; its reader sees it too


def _buffer_reads(ws: Any) -> None:
    """Let eventlet's WebSocket read frames out of a 64 KiB buffer: it makes one recv call per part of a
    frame (header, mask, payload), three system calls for one packet, where one call reads them all."""
    sock = getattr(ws, "socket", None)
    if sock is not None and callable(getattr(ws, "_get_bytes", None)):
        ws.socket = _BufferedSocket(sock)


class _BufferedSocket:
    """A socket whose `recv(n)` returns up to n bytes of what one large recv read; the rest is the socket's."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._at = 0

    def recv(self, n: int) -> bytes:
        if self._at >= len(self._data):
            self._data, self._at = self._sock.recv(RECV_BYTES), 0
        at = self._at
        self._at = at + n
        return self._data[at:at + n]

    def leftover(self) -> bytes:
        """What was read but not yet asked for (it is not the socket's any more)."""
        data, self._data, self._at = self._data[self._at:], b"", 0
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _no_delay(ws: Any) -> None:
    """Send each frame at once: without TCP_NODELAY a frame written while the previous one is unacknowledged
    waits for the client's delayed ACK (up to 40 ms on Linux)."""
    inner = getattr(ws, "ws", None)
    sock: Any = getattr(inner, "sock", None) if inner is not None else getattr(ws, "socket", None)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass   # not a TCP socket (or a WebSocket implementation that hides it): frames may wait a little


def _close(ws: Any, code: int, reason: str) -> None:
    """Close `ws` with `code` and `reason`: simple-websocket's wrapper holds the connection in `ws.ws`;
    eventlet's WebSocket sends the close frame and stops writing, and its reader sees the client's close."""
    inner = getattr(ws, "ws", None)
    if inner is not None:
        if inner.connected:
            inner.close(reason=code, message=reason[:120])
        return
    ws._send_closing_frame(ignore_send_errors=True, close_data=(code, reason[:120]))
    try:
        ws.socket.shutdown(socket.SHUT_WR)
    except OSError:
        pass
