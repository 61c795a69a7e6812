"""GGPO-style rollback netcode in pure Python (stdlib + `game` only, no I/O).

Sessions return requests as data and never own the game; `SessionRunner` executes
them against an env in one batch. See DESIGN.md for the model.
"""
from __future__ import annotations

from netcode.config import SessionConfig, repeat_last
from netcode.errors import NetcodeError
from netcode.executor import BatchResult, Executor
from netcode.p2p import P2PSession
from netcode.requests import CONFIRMED, DISCONNECTED, PREDICTED, AdvanceFrame, LoadState, Request, SaveState
from netcode.runner import SessionRunner
from netcode.spectator import SpectatorSession
from netcode.synctest import SyncTestSession

__all__ = [
    "CONFIRMED", "DISCONNECTED", "PREDICTED", "AdvanceFrame", "BatchResult", "Executor", "LoadState",
    "NetcodeError", "P2PSession", "Request", "SaveState", "SessionConfig", "SessionRunner",
    "SpectatorSession", "SyncTestSession", "repeat_last",
]
