"""The one error type of the netcode."""
from __future__ import annotations

from typing import Any

from game.errors import CoplayError


class NetcodeError(CoplayError):
    """Something the netcode cannot accept or do.

    `code` is a short stable id callers can switch on:
      invalid_config      a SessionConfig value is out of range
      invalid_packet      a packet failed to decode or validate (the session is unchanged)
      invalid_input       a local input is not in the player's action space or not a local player
      unknown_peer        a packet came from an address the session does not know
      snapshot_missing    a load asked for a frame the executor has not saved
      invalid_request     a request is out of order (the env is not at the frame it names)
      missing_local_input advance_frame() was called before every local player had an input
    Optional fields give the frame, player and peer involved.
    """

    code = "netcode_error"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        frame: int | None = None,
        player: str | None = None,
        peer: str | None = None,
    ) -> None:
        self.frame = frame
        self.player = player
        self.peer = peer
        super().__init__(f"[{code}] {message}", code=code)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self), "frame": self.frame, "player": self.player, "peer": self.peer}
