"""The wire format (protocol 3): a packet is a JSON array whose fields have fixed places.

Three kinds:

    input      peer -> peer   [3, "i", gen, peer_gen, frame, adv, t, echo, hold, inputs, ack, checks, gone]
    confirmed  host -> spectator: as input, with every player's confirmed inputs ("c"; peer_gen -1, echo -1)
    ack        spectator -> host  [3, "a", t, ack]

The lists are flat and frames are delta-coded against the packet's `frame` (d = frame - f):

    inputs  [player, d(start), runs, ...]   runs = [action, count, ...]: `count` times `action` (run-length;
                                            only equal ints or strings are merged, other actions repeat)
    ack     [player, d(last frame received contiguously), ...]   (in an ack packet: the frame itself)
    checks  [d(frame), checksum, ...]
    gone    [player, d(frame from which the player is gone), ...]

`decode` parses once and checks the shape in one pass (structure, types, sizes, counts, ids,
frame ranges), building the `Packet` as it goes; anything else raises NetcodeError("invalid_packet")
saying what is wrong. What the actions mean is checked by the session, which knows the action
spaces. Equal actions of one run are one object in the decoded lists, so a reader that checks each
action may skip one that `is` the previous.

A seat may change holder mid-episode (an AI or a stand-in takes a dropped seat, the
participant takes it back); each holder reads its own clock. `gen` is the sender's holder
generation (the server's count of the seat's holders), `peer_gen` the receiver's generation
that `echo` and `adv` are about (-1: none heard yet), so ping and time sync only ever
combine timestamps of one holder.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from netcode.errors import NetcodeError

PROTOCOL_VERSION = 3
MAX_PACKET_BYTES = 64 * 1024
MAX_PLAYERS = 16
MAX_INPUTS_PER_PLAYER = 256
MAX_CHECKS = 16
MAX_FRAME = 1 << 31
_ID_MAX_LEN = 64
_KINDS = {"i": "input", "c": "confirmed", "a": "ack"}
_NUMBERS = (int, float)
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)
_DECODER = json.JSONDecoder()


class Packet(NamedTuple):
    """A decoded packet. An ack packet has only `kind`, `t` and `ack`; its other fields are empty."""

    kind: str                                   # "input", "confirmed" or "ack"
    gen: int
    peer_gen: int
    frame: int
    adv: float
    t: float
    echo: float
    hold: float
    inputs: list[tuple[str, int, list[Any]]]   # (player, start frame, actions)
    ack: list[tuple[str, int]]                 # (player, last frame received contiguously)
    checks: list[tuple[int, str]]              # (frame, checksum)
    gone: list[tuple[str, int]]                # (player, first frame it is gone)


_new_packet = tuple.__new__


# ------------------------------------------------------------------------------------------ encoding
# The builders do not validate (sessions build packets only from validated values, and they are on
# the hot path): `decode` of what they return checks it.

def input_packet(*, gen: int, peer_gen: int, frame: int, adv: float, t: float, echo: float, hold: float,
                 inputs: Mapping[str, tuple[int, Sequence[Any]]], ack: Mapping[str, int],
                 checks: Iterable[tuple[int, str]], gone: Mapping[str, int]) -> str:
    """A peer's input packet: `inputs` {player: (start_frame, [action, ...])}, `ack` and `gone`
    {player: frame}, `checks` [(frame, checksum), ...]."""
    return _encode("i", gen, peer_gen, frame, adv, t, echo, hold, inputs, ack, checks, gone)


def confirmed_packet(*, gen: int, frame: int, t: float, inputs: Mapping[str, tuple[int, Sequence[Any]]],
                     checks: Iterable[tuple[int, str]], gone: Mapping[str, int]) -> str:
    """A host's packet to a spectator (or a lone seat's to the server): every player's confirmed inputs."""
    return _encode("c", gen, -1, frame, 0, t, -1, 0, inputs, {}, checks, gone)


def ack_packet(t: float, ack: Mapping[str, int]) -> str:
    """A spectator's (or the server's) ack: {player: last frame received contiguously}."""
    flat: list[Any] = []
    for player, frame in ack.items():
        flat += (player, frame)
    return _ENCODER.encode([PROTOCOL_VERSION, "a", t, flat])


def _encode(kind: str, gen: int, peer_gen: int, frame: int, adv: float, t: float, echo: float, hold: float,
            inputs: Mapping[str, tuple[int, Sequence[Any]]], ack: Mapping[str, int],
            checks: Iterable[tuple[int, str]], gone: Mapping[str, int]) -> str:
    wire_inputs: list[Any] = []
    for player, (start, actions) in inputs.items():
        wire_inputs += (player, frame - start, _runs(actions))
    wire_ack: list[Any] = []
    for player, acked in ack.items():
        wire_ack += (player, frame - acked)
    wire_checks: list[Any] = []
    for checked, checksum in checks:
        wire_checks += (frame - checked, checksum)
    wire_gone: list[Any] = []
    for player, gone_from in gone.items():
        wire_gone += (player, frame - gone_from)
    return _ENCODER.encode([PROTOCOL_VERSION, kind, gen, peer_gen, frame, adv, t, echo, hold,
                            wire_inputs, wire_ack, wire_checks, wire_gone])


def _runs(actions: Sequence[Any]) -> list[Any]:
    runs: list[Any] = []
    last: Any = None
    last_type: type = type(None)
    for action in actions:
        kind = type(action)
        if kind is last_type and (kind is int or kind is str) and action == last:
            runs[-1] += 1
        else:
            runs += (action, 1)
            last, last_type = action, kind
    return runs


# ------------------------------------------------------------------------------------------ decoding

def decode(data: str | bytes) -> Packet:
    """Parse and validate a packet received from the network."""
    if type(data) is not str:
        if not isinstance(data, (bytes, bytearray)):
            raise _bad(f"a packet must be text, got {type(data).__name__}")
        if len(data) > MAX_PACKET_BYTES:
            raise _bad(f"packet of {len(data)} bytes exceeds the {MAX_PACKET_BYTES}-byte limit")
        try:
            data = data.decode()
        except ValueError as exc:
            raise _bad(f"not UTF-8 text: {exc}") from None
    if len(data) > MAX_PACKET_BYTES:
        raise _bad(f"packet of {len(data)} bytes exceeds the {MAX_PACKET_BYTES}-byte limit")
    try:
        wire, end = _DECODER.raw_decode(data)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"not JSON: {exc}") from None
    if end != len(data):
        raise _bad(f"not JSON: extra data at character {end}")
    if type(wire) is not list or len(wire) < 2:
        raise _bad(f"a packet must be a JSON array [version, kind, ...], got {_show(wire)}")
    version, kind = wire[0], wire[1]
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise _bad(f"protocol version {_show(version)} is not {PROTOCOL_VERSION}; both sides must run the same coplay")
    if kind == "a" and len(wire) == 4:
        t = wire[2]
        if type(t) not in _NUMBERS or not -1e15 < t < 1e15:
            raise _bad(f"t must be a finite number, got {_show(t)}")
        return _new_packet(Packet, ("ack", 0, -1, 0, 0, t, -1, 0, [], _frame_pairs(wire[3], "ack", None, -1), [], []))
    if (kind != "i" and kind != "c") or len(wire) != 13:
        raise _bad(f"a packet must be [3, \"i\" or \"c\", 11 fields] or [3, \"a\", t, ack], got kind {_show(kind)} "
                   f"with {len(wire) - 2} fields")
    _, _, gen, peer_gen, frame, adv, t, echo, hold, inputs, ack, checks, gone = wire
    if type(gen) is not int or not 0 <= gen < MAX_FRAME:
        raise _bad(f"gen must be an int in [0, {MAX_FRAME}), got {_show(gen)}")
    if type(peer_gen) is not int or not -1 <= peer_gen < MAX_FRAME:
        raise _bad(f"peer_gen must be an int >= -1, got {_show(peer_gen)}")
    if type(frame) is not int or not 0 <= frame < MAX_FRAME:
        raise _bad(f"frame must be an int in [0, {MAX_FRAME}), got {_show(frame)}")
    if type(adv) not in _NUMBERS or not -1e15 < adv < 1e15:
        raise _number_error("adv", adv)
    if type(t) not in _NUMBERS or not -1e15 < t < 1e15:
        raise _number_error("t", t)
    if type(echo) not in _NUMBERS or not -1e15 < echo < 1e15:
        raise _number_error("echo", echo)
    if type(hold) not in _NUMBERS or not -1e15 < hold < 1e15:
        raise _number_error("hold", hold)
    return _new_packet(Packet, (
        _KINDS[kind], gen, peer_gen, frame, adv, t, echo, hold, _inputs(inputs, frame),
        _frame_pairs(ack, "ack", frame, -1), _checks(checks, frame),
        [] if gone == [] else _frame_pairs(gone, "gone", frame, 0)))   # gone is nearly always empty


def _inputs(wire: Any, frame: int) -> list[tuple[str, int, list[Any]]]:
    if type(wire) is not list or len(wire) % 3 or len(wire) > 3 * MAX_PLAYERS:
        raise _bad(f"inputs must be a list [player, frame - start, runs, ...] of at most {MAX_PLAYERS} players")
    out: list[tuple[str, int, list[Any]]] = []
    items = iter(wire)
    for player, delta, runs in zip(items, items, items):
        if type(player) is not str or not 0 < len(player) <= _ID_MAX_LEN:
            raise _id_error(player)
        if type(delta) is not int or not 0 <= frame - delta < MAX_FRAME:
            raise _bad(f"inputs of {player!r}: the start frame must be an int in [0, {MAX_FRAME}), "
                       f"got frame - {_show(delta)}")
        if type(runs) is not list or len(runs) % 2 or len(runs) > 2 * MAX_INPUTS_PER_PLAYER:
            raise _bad(f"inputs of {player!r}: runs must be a list [action, count, ...], got {_show(runs)}")
        actions: list[Any] = []
        pairs = iter(runs)
        for action, count in zip(pairs, pairs):
            if type(count) is not int or not 0 < count <= MAX_INPUTS_PER_PLAYER - len(actions):
                raise _bad(f"inputs of {player!r}: run count {_show(count)} is not an int >= 1, or the runs "
                           f"carry more than {MAX_INPUTS_PER_PLAYER} actions")
            if count == 1:
                actions.append(action)
            else:
                actions += [action] * count
        out.append((player, frame - delta, actions))
    if len(out) > 1:
        _no_repeats([entry[0] for entry in out], "inputs")
    return out


def _frame_pairs(wire: Any, name: str, frame: int | None, low: int) -> list[tuple[str, int]]:
    """[player, frame - f, ...] (`frame` None: [player, f, ...]) as [(player, f), ...], f in [low, MAX_FRAME)."""
    if type(wire) is not list or len(wire) % 2 or len(wire) > 2 * MAX_PLAYERS:
        raise _bad(f"{name} must be a list [player, frame, ...] of at most {MAX_PLAYERS} players")
    out: list[tuple[str, int]] = []
    items = iter(wire)
    for player, coded in zip(items, items):
        if type(player) is not str or not 0 < len(player) <= _ID_MAX_LEN:
            raise _id_error(player)
        if type(coded) is not int or not low <= (value := coded if frame is None else frame - coded) < MAX_FRAME:
            raise _bad(f"{name} of {player!r} must be an int frame >= {low}, got "
                       f"{_show(coded) if frame is None else f'frame - {_show(coded)}'}")
        out.append((player, value))
    if len(out) > 1:
        _no_repeats([entry[0] for entry in out], name)
    return out


def _checks(wire: Any, frame: int) -> list[tuple[int, str]]:
    if type(wire) is not list or len(wire) % 2 or len(wire) > 2 * MAX_CHECKS:
        raise _bad(f"checks must be a list [frame - f, checksum, ...] of at most {MAX_CHECKS} checksums")
    out: list[tuple[int, str]] = []
    items = iter(wire)
    for delta, checksum in zip(items, items):
        if (type(delta) is not int or type(checksum) is not str or not 0 < len(checksum) <= 64
                or not 0 <= frame - delta < MAX_FRAME):
            raise _bad(f"checks entry frame - {_show(delta)}, {_show(checksum)} must be a frame and a checksum string")
        out.append((frame - delta, checksum))
    return out


def _no_repeats(players: list[str], name: str) -> None:
    for i, player in enumerate(players):
        if player in players[:i]:
            raise _bad(f"{name} names player {player!r} twice")


def _number_error(name: str, value: Any) -> NetcodeError:
    return _bad(f"{name} must be a finite number, got {_show(value)}")


def _id_error(player: Any) -> NetcodeError:
    return _bad(f"player ids must be non-empty strings of at most {_ID_MAX_LEN} characters, got {_show(player)}")


def _show(value: Any) -> str:
    return f"{value!r:.40}"


def _bad(message: str) -> NetcodeError:
    return NetcodeError("invalid_packet", message)
