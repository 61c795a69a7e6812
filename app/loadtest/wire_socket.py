"""The wire generator's match channel on a raw socket: a minimal RFC 6455 client as an asyncio Protocol.

The generator sends and receives ~36,000 match-channel frames a second per core at full load, and a
general WebSocket client (aiohttp) spends more CPU per frame than the server it tests. This one does
only what the channel needs: the HTTP upgrade, unfragmented text frames out, and text, close, ping
and (rarely) fragmented frames in. It speaks the channel protocol of issue 12 (the ticket first, `ok`
back, then "<episode> <addr> <data>" frames both ways; "! reason" for a refused frame).
The frame format is the server's own (app/web/ws_frame.py).

Client frames must be masked (RFC 6455 5.3). The key is fixed at zero, so the XOR is the identity
and no byte of a payload has to be touched. That is legal framing (the server unmasks any key); the
RFC asks for an unpredictable key only so that a hostile script in a browser cannot choose the bytes
an intermediary sees (cache poisoning). The load generator runs no foreign script and chooses its
payloads itself, so that attack does not exist here.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
import urllib.parse
from typing import Callable, cast

from app.loadtest.wire_transport import CHANNEL_OK, CONNECT_TIMEOUT, ChannelRefused
from app.web.ws_frame import (CLOSE_NORMAL, FIN, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG,
                              OP_TEXT, OPCODE_BITS, close_payload, frame, frame_header, parse_close, parse_header)

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 1 << 20      # the server's frames are packets of at most 64 KB; more is a broken stream
_FINAL_TEXT = FIN | OP_TEXT


class _ChannelProtocol(asyncio.Protocol):
    """The bytes of one channel: the upgrade answer, then server frames (unmasked) parsed as they come."""

    def __init__(self, channel: RawMatchChannel) -> None:
        self.channel = channel
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self._handshake(data)
            return
        buffer = self.buffer + data if self.buffer else data
        # The common case: one whole final text frame (unmasked) and nothing more.
        header = parse_header(buffer, 0)
        if header is not None:
            first, length, mask, start = header
            if first == _FINAL_TEXT and mask is None and len(buffer) == start + length and length <= MAX_MESSAGE:
                self.buffer = b""
                self.channel.message(buffer[start:].decode(errors="replace"))
                return
        self.buffer = self._frames(buffer)

    def _handshake(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            if len(self.buffer) > 16384:
                self.upgraded.set_exception(ChannelRefused("the match channel's upgrade answer is too long"))
            return
        status, _, fields = head.decode("latin-1").partition("\r\n")
        headers = {}
        for line in fields.split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status.split(" ")[1:2] != ["101"]:
            self.upgraded.set_exception(ChannelRefused(f"match channel upgrade refused: {status}"))
            return
        if headers.get("sec-websocket-accept") != self.channel.accept:
            self.upgraded.set_exception(ChannelRefused("match channel upgrade answered a wrong Sec-WebSocket-Accept"))
            return
        self.buffer = b""
        self.upgraded.set_result(None)
        if rest:
            self.data_received(rest)

    def _frames(self, buffer: bytes) -> bytes:
        """Handle every whole frame in `buffer`; returns the incomplete rest."""
        at = 0
        while (header := parse_header(buffer, at)) is not None:
            first, length, mask, start = header
            if mask is not None or length > MAX_MESSAGE:
                self.channel.broken("the server sent a masked or oversized frame")
                return b""
            end = start + length
            if end > len(buffer):
                break
            self._frame(first, buffer[start:end])
            at = end
        return buffer[at:]

    def _frame(self, first: int, payload: bytes) -> None:
        opcode, fin = first & OPCODE_BITS, first & FIN
        if opcode == OP_CLOSE:
            self.channel.closed_by_server(*parse_close(payload))
        elif opcode == OP_PING:
            self.channel.write(frame(OP_PONG, payload, masked=True))
        elif opcode == OP_PONG:
            pass
        elif opcode in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
            self.fragments.append(payload)
            if fin:
                message, self.fragments = b"".join(self.fragments), []
                self.channel.message(message.decode(errors="replace"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ChannelRefused(f"the match channel closed during the upgrade: {exc!r}"))
        self.channel.lost(exc)


class RawMatchChannel:
    """One seat's match channel on a raw socket (same surface as wire_transport.MatchChannel): `open`
    upgrades, sends the ticket and waits for `ok`; `send` writes a frame at once (the kernel's socket
    buffer, then asyncio's, absorb it); frames from the server go to `on_frame(episode, sender, data)`,
    refusals ("! reason") to `on_refusal(reason)`."""

    def __init__(self, url: str, ticket: str, on_frame: Callable[[int, str, str], None],
                 on_refusal: Callable[[str], None], cookie: str = "") -> None:
        self.url, self.ticket, self.cookie = url, ticket, cookie
        self.on_frame, self.on_refusal = on_frame, on_refusal
        self.closed_with: tuple[int | None, str] | None = None
        key = base64.b64encode(os.urandom(16))
        self.key = key.decode()
        self.accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        self._protocol: _ChannelProtocol | None = None
        self._ok: asyncio.Future[str] | None = None
        self._prefixes: dict[tuple[int, str], bytes] = {}

    async def open(self, timeout: float = CONNECT_TIMEOUT) -> None:
        await asyncio.wait_for(self._open(), timeout)

    async def _open(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        secure = parts.scheme == "wss"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        loop = asyncio.get_running_loop()
        self._ok = loop.create_future()
        _, protocol = await loop.create_connection(lambda: _ChannelProtocol(self), host, port,
                                                   ssl=ssl.create_default_context() if secure else None)
        self._protocol = protocol
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = (f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {self.key}\r\nSec-WebSocket-Version: 13\r\n"
                   + (f"Cookie: {self.cookie}\r\n" if self.cookie else "") + "\r\n")
        self.write(request.encode("latin-1"))
        try:
            await protocol.upgraded
            self.send_text(self.ticket)
            answer = await self._ok
        except BaseException:
            self._abort()
            raise
        if answer != CHANNEL_OK:
            self._abort()
            raise ChannelRefused(f"match channel refused the ticket: {answer}")

    def _abort(self) -> None:
        for waiting in (self._ok, self._protocol.upgraded if self._protocol is not None else None):
            if waiting is not None and not waiting.done():
                waiting.cancel()   # nobody waits for them any more
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abort()

    # ---------------------------------------------------------------- out

    def write(self, data: bytes) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None and not protocol.transport.is_closing():
            protocol.transport.write(data)

    def send_text(self, text: str) -> None:
        self.write(frame(OP_TEXT, text.encode(), masked=True))

    def send(self, episode: int, to: str, data: str) -> None:
        """One "<episode> <addr> <data>" frame (the "<episode> <addr> " prefix is encoded once)."""
        prefix = self._prefixes.get((episode, to))
        if prefix is None:
            prefix = self._prefixes[(episode, to)] = f"{episode} {to} ".encode()
        payload = prefix + data.encode()
        self.write(frame_header(OP_TEXT, len(payload), masked=True) + payload)

    # ---------------------------------------------------------------- in (from the protocol)

    def message(self, text: str) -> None:
        ok = self._ok
        if ok is not None and not ok.done():
            ok.set_result(text)
            return
        parts = text.split(" ", 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1] and parts[2]:
            self.on_frame(int(parts[0]), parts[1], parts[2])
        elif text.startswith("! "):
            self.on_refusal(text[2:])

    def closed_by_server(self, code: int | None, reason: str) -> None:
        self.closed_with = (code, reason)
        if self._ok is not None and not self._ok.done():
            self._ok.set_exception(ChannelRefused(f"match channel refused the ticket (code {code}): {reason}"))
        self.write(frame(OP_CLOSE, close_payload(code), masked=True))
        self._close_transport()

    def broken(self, why: str) -> None:
        self.closed_with = (None, why)
        self._abort()

    def lost(self, exc: Exception | None) -> None:
        if self.closed_with is None:
            self.closed_with = (None, repr(exc) if exc else "connection closed")
        if self._ok is not None and not self._ok.done():
            self._ok.set_exception(ChannelRefused(f"the match channel closed before `ok`: {self.closed_with[1]}"))

    def _close_transport(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()

    async def close(self) -> None:
        """Say goodbye (a close frame) and close the socket; the server needs no answer to go."""
        if self.is_open:
            self.write(frame(OP_CLOSE, close_payload(CLOSE_NORMAL), masked=True))
        self._close_transport()

    @property
    def is_open(self) -> bool:
        protocol = self._protocol
        return (self.closed_with is None and protocol is not None and protocol.transport is not None
                and not protocol.transport.is_closing())
