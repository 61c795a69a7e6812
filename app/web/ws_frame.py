"""The WebSocket frame format (RFC 6455 5.2) of the match channel, for both of its ends.

The server (app/web/channel_pump.py) sends unmasked frames and reads masked ones; the load
generator's client (app/loadtest/wire_socket.py) does the opposite, so building and parsing
take the mask as a parameter. No extensions: the channel declines permessage-deflate.
"""
from __future__ import annotations

import struct

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
FIN, EXTENSION_BITS, OPCODE_BITS = 0x80, 0x70, 0x0F   # of a frame's first byte
CLOSE_NORMAL, CLOSE_PROTOCOL, CLOSE_DATA, CLOSE_TOO_BIG = 1000, 1002, 1007, 1009
MAX_CLOSE_REASON = 120   # characters: a control frame's payload is at most 125 bytes

_PLAIN16, _PLAIN64 = struct.Struct("!BBH"), struct.Struct("!BBQ")
_MASKED7, _MASKED16, _MASKED64 = struct.Struct("!BB4x"), struct.Struct("!BBH4x"), struct.Struct("!BBQ4x")


def frame_header(opcode: int, length: int, masked: bool = False) -> bytes:
    """The header of a final frame (FIN set) of `length` payload bytes. `masked` (a client's frames) adds
    the mask bit and a zero key, under which the payload is sent as it is (app/loadtest/wire_socket.py
    says why a zero key is fine there)."""
    first = FIN | opcode
    if masked:
        if length < 126:
            return _MASKED7.pack(first, 0x80 | length)
        if length < 65536:
            return _MASKED16.pack(first, 0x80 | 126, length)
        return _MASKED64.pack(first, 0x80 | 127, length)
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return _PLAIN16.pack(first, 126, length)
    return _PLAIN64.pack(first, 127, length)


def frame(opcode: int, payload: bytes, masked: bool = False) -> bytes:
    """A whole final frame: header and payload (a masked one under the zero key, see `frame_header`)."""
    return frame_header(opcode, len(payload), masked) + payload


def close_payload(code: int | None, reason: str = "") -> bytes:
    """A close frame's payload: the status code and the reason (cut to fit); none at all for no code."""
    if code is None:
        return b""
    return struct.pack("!H", code) + reason[:MAX_CLOSE_REASON].encode()


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """A close frame's status code (None when it has none) and reason."""
    if len(payload) < 2:
        return None, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode(errors="replace")


def parse_header(buf: bytes, at: int) -> tuple[int, int, bytes | None, int] | None:
    """The header of the frame that starts at `buf[at]`: (its first byte, with the FIN, EXTENSION_BITS
    and OPCODE_BITS; its payload length; its 4-byte mask key, None for an unmasked frame; where its
    payload starts), or None while `buf` does not hold the whole header yet."""
    left = len(buf) - at
    if left < 2:
        return None
    second = buf[at + 1]
    length = second & 0x7F
    head = at + 2
    if length == 126:
        if left < 4:
            return None
        length = (buf[at + 2] << 8) | buf[at + 3]
        head = at + 4
    elif length == 127:
        if left < 10:
            return None
        length = int.from_bytes(buf[at + 2:at + 10], "big")
        head = at + 10
    if not second & 0x80:
        return buf[at], length, None, head
    if len(buf) < head + 4:
        return None
    return buf[at], length, buf[head:head + 4], head + 4


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR `data` with a 4-byte client `mask` (on two big ints: one Python operation, any length)."""
    n = len(data)
    key = mask * (n // 4 + 1)
    return (int.from_bytes(data, "little") ^ int.from_bytes(key[:n], "little")).to_bytes(n, "little")
