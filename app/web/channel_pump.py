"""The match channels of an eventlet server, read and written by one green thread (the pump).

Eventlet's own WebSocket costs one green-thread switch, two epoll registrations and a recv per
part of each frame read, and a writer green thread woken per frame sent: most of the server's CPU
per relayed packet. Here every open channel's socket stays registered in one epoll set of the
pump's own; the pump waits on that set's descriptor (one eventlet wait for all channels), reads
whatever each ready socket holds, parses the WebSocket frames itself (app/web/ws_frame.py's format:
text and binary, fragments, ping/pong, close), hands each message to its host's `channel_frame`
(app/live/channel.py `ChannelHost`: the Hub, or a relay's RelayHost), and sends what the relay
queued on each socket in one write when the batch is done (after the batch's recording lines, held
until then: one file write per match and batch). A frame the host refuses for the rate mutes its
socket for `REFUSED_PAUSE_S`, as a channel's own reader pauses (app/web/match_channel.py), so the rest
of its data waits and is not refused in turn. A client that stops reading gets its frames queued up
to `MAX_QUEUED_BYTES`, then its channel closes (1008): it never blocks the relay.

The HTTP upgrade and the ticket frame stay with eventlet's WebSocket (app/web/match_channel.py);
the connection's green thread then waits until the pump is done with it.
"""
from __future__ import annotations

import logging
import socket
import warnings
from typing import Any, Callable

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # eventlet warns on import that it is deprecated upstream
    from eventlet import patcher
    from eventlet.event import Event
    from eventlet.hubs import get_hub, trampoline

from app.data.recording import held_writes
from app.live.channel import CLOSE_FLOODING, OpenChannel
from app.live.hub import Hub
from app.web.ws_frame import (CLOSE_DATA, CLOSE_PROTOCOL, CLOSE_TOO_BIG, EXTENSION_BITS, FIN, OP_BINARY, OP_CLOSE,
                              OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, OPCODE_BITS, close_payload, frame,
                              frame_header, parse_close, parse_header, unmask)

log = logging.getLogger("coplay.server")
select = patcher.original("select")

REFUSED_PAUSE_S = 0.001
MAX_QUEUED_BYTES = 4 * 1024 * 1024   # bytes waiting for a client that does not read: past this, it closes
CLOSE_WAIT_S = 5.0                   # a closed channel whose client neither answers nor hangs up is cut
RECV_BYTES = 256 * 1024   # read into one buffer kept for it, not a fresh 256 KiB bytes per recv()
IN = select.EPOLLIN
OUT = select.EPOLLOUT


class PumpLink:
    """One channel's socket (app.live.channel.ChannelLink): frames to send and bytes read, not yet parsed."""

    def __init__(self, pump: ChannelPump, sock: Any, max_message: int) -> None:
        self.pump = pump
        self.sock = sock                   # the real, non-blocking socket
        self.fd: int = sock.fileno()
        self.max_message = max_message
        self.out = bytearray()
        self.inbox = b""
        self.fragments: list[bytes] | None = None
        self.fragment_opcode = 0
        self.channel: OpenChannel | None = None
        self.closing = False               # a close frame is queued or sent: nothing more is sent
        self.pending: list[tuple[int, bytes]] = []   # messages held while muted
        self.muted = False
        self.registered = False
        self.mask = 0                      # the events its epoll registration asks for
        self.done = Event()

    # ----------------------------------------------------------- ChannelLink
    def send(self, text: str) -> None:
        if self.closing:
            return
        data = text.encode()
        if len(self.out) + len(data) > MAX_QUEUED_BYTES:
            self.out.clear()
            self.close(CLOSE_FLOODING, "the client does not read its frames")
            return
        self.out += frame_header(OP_TEXT, len(data))
        self.out += data
        pump = self.pump
        if pump.in_batch and self.registered:
            pump.dirty.add(self)   # sent when the batch is done (the common case, inlined)
        else:
            pump.wrote(self)

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self._queue_close(code, reason)
        self.pump.wrote(self)

    # ------------------------------------------------------------- the pump's
    def _queue_close(self, code: int, reason: str) -> None:
        self.out += frame(OP_CLOSE, close_payload(code, reason))
        self.closing = True
        get_hub().schedule_call_global(CLOSE_WAIT_S, self.pump.finish, self)

    def flush(self) -> bool:
        """Send what is queued, as far as the socket takes it; False when the connection broke."""
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                sent = 0
            except OSError:
                return False
            del self.out[:sent]
        if self.closing and not self.out:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return True

    def messages(self, data: bytes) -> list[tuple[int, bytes]] | None:
        """The complete messages (opcode, payload) in what was read so far plus `data`; control frames
        are answered here. None when the connection must end (a close, or a protocol error: close sent)."""
        buf = self.inbox + data if self.inbox else data
        at, end = 0, len(buf)
        found: list[tuple[int, bytes]] = []
        while (header := parse_header(buf, at)) is not None:
            first, length, mask, start = header
            if mask is None or first & EXTENSION_BITS:
                self._fail(CLOSE_PROTOCOL, "client frames are masked, with no extension bits")
                return None
            if length > self.max_message:
                self._fail(CLOSE_TOO_BIG, f"a frame is at most {self.max_message} bytes")
                return None
            if end < start + length:
                break
            at = start + length
            payload = unmask(buf[start:at], mask) if length else b""
            opcode = first & OPCODE_BITS
            if opcode & 0x8:   # a control frame
                if not self._control(opcode, payload):
                    return None
                continue
            if opcode == OP_CONTINUATION:
                if self.fragments is None:
                    self._fail(CLOSE_PROTOCOL, "a continuation frame with no message to continue")
                    return None
                self.fragments.append(payload)
                if sum(map(len, self.fragments)) > self.max_message:
                    self._fail(CLOSE_TOO_BIG, f"a message is at most {self.max_message} bytes")
                    return None
            elif opcode in (OP_TEXT, OP_BINARY):
                if self.fragments is not None:
                    self._fail(CLOSE_PROTOCOL, "a new message before the last one's final frame")
                    return None
                self.fragments, self.fragment_opcode = [payload], opcode
            else:
                self._fail(CLOSE_PROTOCOL, f"unknown opcode {opcode}")
                return None
            if first & FIN:
                found.append((self.fragment_opcode, b"".join(self.fragments)))
                self.fragments = None
        self.inbox = buf[at:]
        return found

    def _control(self, opcode: int, payload: bytes) -> bool:
        if opcode == OP_PING:
            if not self.closing:
                self.out += frame(OP_PONG, payload)
            return True
        if opcode == OP_PONG:
            return True
        if opcode == OP_CLOSE:
            if not self.closing:
                code = parse_close(payload)[0]
                self._queue_close(code if code is not None and 1000 <= code < 5000 else 1000, "")
            self.flush()
            return False
        self._fail(CLOSE_PROTOCOL, f"unknown control opcode {opcode}")
        return False

    def _fail(self, code: int, reason: str) -> None:
        if not self.closing:
            self.out.clear()
            self._queue_close(code, reason)
        self.flush()


class ChannelPump:
    """Reads and writes every eventlet match channel of one Hub from one green thread."""

    def __init__(self, hub: Hub, spawn: Callable[..., Any]) -> None:
        self.hub = hub
        self.epoll = select.epoll()
        self.links: dict[int, PumpLink] = {}
        self.dirty: set[PumpLink] = set()
        self.in_batch = False
        self.buffer = bytearray(RECV_BYTES)
        self.batches = hub.metrics.channel_batches
        self.view = memoryview(self.buffer)
        spawn(self._run)

    def adopt(self, link: PumpLink, leftover: bytes) -> None:
        """Serve `link` (its channel open, or closing) from now on; `leftover` is what was read past the ticket."""
        self.links[link.fd] = link
        link.mask = IN | (OUT if link.out else 0)
        self.epoll.register(link.fd, link.mask)
        link.registered = True
        if leftover:
            with self.hub.lock:
                self._receive(link, leftover)
            self._flush_dirty()

    def wrote(self, link: PumpLink) -> None:
        """`link` has frames queued: sent at the end of the batch, or now when outside one."""
        if self.in_batch and link.registered:
            self.dirty.add(link)
        elif not link.flush():
            self.finish(link)
        else:
            self._watch(link)

    def finish(self, link: PumpLink) -> None:
        """The connection is done: the Hub forgets its channel, its green thread returns and closes it."""
        if link.done.ready():
            return
        if link.registered:
            self.links.pop(link.fd, None)
            try:
                self.epoll.unregister(link.fd)
            except OSError:
                pass
            link.registered = False
        self.dirty.discard(link)
        if link.channel is not None:
            self.hub.channel_closed(link.channel)
        link.done.send(None)

    def _run(self) -> None:
        while True:
            try:
                # Wait through eventlet's hub before every batch, even when sockets are ready already:
                # under load there always are, and a pump that never yields starves every other green
                # thread (Socket.IO pings, pages, timers).
                trampoline(self.epoll.fileno(), read=True)
                events = self.epoll.poll(0)
                if events:
                    self._batch(events)
            except Exception:   # one connection's trouble must not stop every channel
                log.exception("the match channel pump failed a batch")

    def _batch(self, events: list[tuple[int, int]]) -> None:
        self.batches.inc()   # the server's CPU per packet falls as batches grow: capacity.py prints their mean
        self.in_batch = True
        try:
            with self.hub.lock, held_writes():   # the batch's recording lines go out before its frames
                for fd, mask in events:
                    link = self.links.get(fd)
                    if link is None:
                        continue
                    if mask & OUT:
                        self.dirty.add(link)
                    if mask & (IN | select.EPOLLHUP | select.EPOLLERR) and not link.muted:
                        try:
                            read = link.sock.recv_into(self.buffer)
                        except BlockingIOError:
                            continue
                        except OSError:
                            read = 0
                        if not read:
                            self.finish(link)
                            continue
                        self._receive(link, self.view[:read].tobytes())
        finally:
            self.in_batch = False
        self._flush_dirty()

    def _receive(self, link: PumpLink, data: bytes) -> None:
        messages = link.messages(data)
        if messages is None:
            self.finish(link)
            return
        if link.pending:
            messages, link.pending = link.pending + messages, []
        for i, (opcode, payload) in enumerate(messages):
            if link.channel is None or link.closing:
                return
            if opcode == OP_TEXT:
                try:
                    raw: Any = payload.decode()
                except UnicodeDecodeError:
                    link._fail(CLOSE_DATA, "text frames are UTF-8")
                    return
            else:
                raw = payload
            if not self.hub.channel_frame_locked(link.channel, raw):   # the batch holds the hub's lock
                self._mute(link, messages[i + 1:])
                return
        if link.out:
            self.dirty.add(link)

    def _mute(self, link: PumpLink, pending: list[tuple[int, bytes]]) -> None:
        """A frame refused for the rate: `link` is not read for a moment; its other messages wait."""
        link.muted = True
        link.pending = pending
        self._watch(link)
        get_hub().schedule_call_global(REFUSED_PAUSE_S, self._unmute, link)

    def _unmute(self, link: PumpLink) -> None:
        if not link.registered:
            return
        link.muted = False
        self._watch(link)
        if link.pending or link.inbox:
            self.in_batch = True
            try:
                with self.hub.lock, held_writes():
                    self._receive(link, b"")
            finally:
                self.in_batch = False
            self._flush_dirty()

    def _watch(self, link: PumpLink) -> None:
        """Ask epoll for what `link` waits for now (reading unless muted, writing while frames wait)."""
        mask = (0 if link.muted else IN) | (OUT if link.out else 0)
        if link.registered and mask != link.mask:
            link.mask = mask
            self.epoll.modify(link.fd, mask)

    def _flush_dirty(self) -> None:
        dirty, self.dirty = self.dirty, set()
        for link in dirty:
            if link.flush():
                self._watch(link)
            else:
                self.finish(link)
