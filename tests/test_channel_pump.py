"""The eventlet server's channel pump (app/web/channel_pump.py) speaks RFC 6455 itself: fragments,
several frames in one TCP segment, pings and protocol errors, through a real server on loopback."""
from __future__ import annotations

import os

import websocket

from tests.server_fixtures import Server
from tests.test_match_channel import Channel, seated_pair, server   # noqa: F401  (the module's server fixture)


def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One client frame, masked as RFC 6455 requires."""
    return websocket.ABNF(fin=int(fin), opcode=opcode, data=payload).format()


def test_fragments_coalesced_frames_and_pings_are_read_as_a_client_sends_them(server: Server) -> None:  # noqa: F811
    left, right = seated_pair(server)
    try:
        mine, theirs = Channel(server, left.ticket), Channel(server, right.ticket)
        assert mine.next() == "ok" and theirs.next() == "ok"
        frame = f"0 s1 {left.packet()}".encode()
        split = len(frame) // 2
        mine.ws.sock.sendall(masked(websocket.ABNF.OPCODE_TEXT, frame[:split], fin=False)
                             + masked(websocket.ABNF.OPCODE_PING, b"are you there")
                             + masked(websocket.ABNF.OPCODE_CONT, frame[split:]))
        assert theirs.next() == f"0 s0 {frame[5:].decode()}"
        mine.ws.sock.sendall(masked(websocket.ABNF.OPCODE_TEXT, frame) * 3)   # three frames, one write
        assert [theirs.next() for _ in range(3)] == [f"0 s0 {frame[5:].decode()}"] * 3
        assert theirs.nothing_for(0.3)
        mine.close()
        theirs.close()
    finally:
        left.close()
        right.close()


def test_an_unmasked_or_too_long_frame_closes_the_channel_with_a_protocol_error(server: Server) -> None:  # noqa: F811
    left, right = seated_pair(server)
    try:
        mine, theirs = Channel(server, left.ticket), Channel(server, right.ticket)
        assert mine.next() == "ok" and theirs.next() == "ok"
        mine.ws.sock.sendall(bytes((0x81, 5)) + b"hello")   # a client frame without a mask
        code, reason = mine.wait_closed()
        assert code == 1002 and "masked" in reason
        theirs.ws.sock.sendall(bytes((0x82, 0x80 | 127)) + (2_000_000).to_bytes(8, "big") + os.urandom(4))
        code, reason = theirs.wait_closed()
        assert code == 1009 and "at most" in reason
    finally:
        left.close()
        right.close()
