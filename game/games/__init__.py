"""The reference games: Pong (real-time, 60 fps, rollback showcase) and Cooking
(cooperative Overcooked-style kitchen, ~8 steps per second)."""
from __future__ import annotations

from game.games.cooking import Cooking
from game.games.pong import Pong

__all__ = ["Cooking", "Pong"]
