"""The wire format: packets are JSON objects with a protocol version.

Three kinds:

    input      peer -> peer   {"v", "kind": "input", "gen", "peer_gen", "frame", "adv", "t", "echo", "hold",
                               "inputs": {player: [start_frame, [action, ...]]},
                               "ack": {player: last frame received contiguously},
                               "checks": [[frame, checksum], ...], "gone": {player: frame}}
    confirmed  host -> spectator: as input, with every player's confirmed inputs
    ack        spectator -> host {"v", "kind": "ack", "t", "ack": {player: frame}}

`decode` checks structure, types and sizes and raises NetcodeError("invalid_packet")
on anything else; what the actions mean is checked by the session, which knows the
action spaces.

A seat may change holder mid-episode (an AI or a stand-in takes a dropped seat, the
participant takes it back); each holder reads its own clock. `gen` is the sender's holder
generation (the server's count of the seat's holders), `peer_gen` the receiver's generation
that `echo` and `adv` are about (-1: none heard yet), so ping and time sync only ever
combine timestamps of one holder.
"""
from __future__ import annotations

import json
from typing import Any

from netcode.errors import NetcodeError

PROTOCOL_VERSION = 2
MAX_PACKET_BYTES = 64 * 1024
MAX_PLAYERS = 16
MAX_INPUTS_PER_PLAYER = 256
MAX_CHECKS = 16
MAX_FRAME = 1 << 31
_KINDS = ("input", "confirmed", "ack")
_ID_MAX_LEN = 64


def encode(packet: dict[str, Any]) -> str:
    """Serialise a packet. Sessions build packets only from validated values, so this
    does not validate again (it is on the hot path); call `validate` to check one."""
    return json.dumps(packet, separators=(",", ":"))


def decode(data: str | bytes) -> dict[str, Any]:
    """Parse and validate a packet received from the network."""
    if not isinstance(data, (str, bytes, bytearray)):
        raise _bad(f"a packet must be text, got {type(data).__name__}")
    if len(data) > MAX_PACKET_BYTES:
        raise _bad(f"packet of {len(data)} bytes exceeds the {MAX_PACKET_BYTES}-byte limit")
    try:
        packet = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"not JSON: {exc}") from None
    validate(packet)
    return packet


def validate(packet: Any) -> None:
    """Raise NetcodeError("invalid_packet") unless `packet` is a well-formed packet."""
    if not isinstance(packet, dict):
        raise _bad(f"a packet must be a JSON object, got {type(packet).__name__}")
    if packet.get("v") != PROTOCOL_VERSION:
        raise _bad(f"protocol version {packet.get('v')!r} is not {PROTOCOL_VERSION}; both sides must run the same coplay")
    kind = packet.get("kind")
    if kind not in _KINDS:
        raise _bad(f"kind must be one of {_KINDS}, got {kind!r:.40}")
    allowed = {"v", "kind", "t", "ack"} if kind == "ack" else {
        "v", "kind", "gen", "peer_gen", "frame", "adv", "t", "echo", "hold", "inputs", "ack", "checks", "gone"}
    extra = set(packet) - allowed
    if extra:
        raise _bad(f"unexpected fields {sorted(extra)} in a {kind} packet")
    _number(packet, "t")
    _frame_map(packet, "ack", low=-1)
    if kind == "ack":
        return
    _frame(packet, "gen")
    _generation(packet, "peer_gen")
    _frame(packet, "frame")
    _number(packet, "adv")
    _number(packet, "echo")
    _number(packet, "hold")
    _frame_map(packet, "gone", low=0)
    inputs = packet.get("inputs")
    if not isinstance(inputs, dict) or len(inputs) > MAX_PLAYERS:
        raise _bad(f"inputs must be an object of at most {MAX_PLAYERS} players")
    for player, entry in inputs.items():
        _player_id(player)
        if not (isinstance(entry, list) and len(entry) == 2 and _is_frame(entry[0]) and isinstance(entry[1], list)):
            raise _bad(f"inputs[{player!r}] must be [start_frame, [actions...]]")
        if len(entry[1]) > MAX_INPUTS_PER_PLAYER:
            raise _bad(f"inputs[{player!r}] carries {len(entry[1])} actions, more than {MAX_INPUTS_PER_PLAYER}")
    checks = packet.get("checks")
    if not isinstance(checks, list) or len(checks) > MAX_CHECKS:
        raise _bad(f"checks must be a list of at most {MAX_CHECKS} [frame, checksum] pairs")
    for check in checks:
        if not (isinstance(check, list) and len(check) == 2 and _is_frame(check[0])
                and isinstance(check[1], str) and 0 < len(check[1]) <= 64):
            raise _bad(f"checks entry {check!r:.40} must be [frame, checksum string]")


def _bad(message: str) -> NetcodeError:
    return NetcodeError("invalid_packet", message)


def _is_frame(value: Any) -> bool:
    return type(value) is int and 0 <= value < MAX_FRAME


def _frame(packet: dict, key: str) -> None:
    if not _is_frame(packet.get(key)):
        raise _bad(f"{key} must be an int in [0, {MAX_FRAME}), got {packet.get(key)!r:.40}")


def _generation(packet: dict, key: str) -> None:
    value = packet.get(key)
    if type(value) is not int or not -1 <= value < MAX_FRAME:
        raise _bad(f"{key} must be an int >= -1, got {value!r:.40}")


def _number(packet: dict, key: str) -> None:
    value: Any = packet.get(key)  # Any: mypy does not narrow on the exact `type(...) in` test (which rejects bool)
    if type(value) not in (int, float) or not -1e15 < value < 1e15:
        raise _bad(f"{key} must be a finite number, got {value!r:.40}")


def _player_id(player: Any) -> None:
    if not isinstance(player, str) or not 0 < len(player) <= _ID_MAX_LEN:
        raise _bad(f"player ids must be non-empty strings of at most {_ID_MAX_LEN} characters, got {player!r:.40}")


def _frame_map(packet: dict, key: str, low: int) -> None:
    value = packet.get(key)
    if not isinstance(value, dict) or len(value) > MAX_PLAYERS:
        raise _bad(f"{key} must be an object of at most {MAX_PLAYERS} players")
    for player, frame in value.items():
        _player_id(player)
        if type(frame) is not int or not low <= frame < MAX_FRAME:
            raise _bad(f"{key}[{player!r}] must be an int frame >= {low}, got {frame!r:.40}")
