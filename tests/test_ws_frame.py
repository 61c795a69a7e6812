"""The match channel's WebSocket frame format (app/web/ws_frame.py), as both of its ends build and parse it."""
from __future__ import annotations

import pytest

from app.web.ws_frame import (FIN, OP_CLOSE, OP_TEXT, close_payload, frame, frame_header, parse_close,
                              parse_header, unmask)


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536])
@pytest.mark.parametrize("masked", [False, True])
def test_a_built_header_parses_back_to_its_opcode_length_and_mask(length: int, masked: bool) -> None:
    header = frame_header(OP_TEXT, length, masked)
    data = b"xx" + header + b"p" * length
    first, parsed_length, mask, start = parse_header(data, 2) or (0, 0, None, 0)
    assert (first, parsed_length, start) == (FIN | OP_TEXT, length, 2 + len(header))
    assert mask == (b"\0\0\0\0" if masked else None)
    for cut in range(2, 2 + len(header)):   # an incomplete header (with its mask key) is not parsed yet
        assert parse_header(data[:cut], 2) is None


def test_a_masked_payload_unmasks_and_close_frames_carry_code_and_reason() -> None:
    key, text = b"\x01\x02\x03\x04", b"hello, channel"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(text))
    assert unmask(masked, key) == text
    close = frame(OP_CLOSE, close_payload(1008, "too fast"))
    first, length, _, start = parse_header(close, 0) or (0, 0, None, 0)
    assert first == FIN | OP_CLOSE and parse_close(close[start:start + length]) == (1008, "too fast")
    assert close_payload(None) == b"" and parse_close(b"") == (None, "")
