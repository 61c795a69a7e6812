"""Per-player input queues: confirmed inputs, predictions, and misprediction tracking."""
from __future__ import annotations

from typing import Any

from netcode.config import Predictor
from netcode.requests import CONFIRMED, DISCONNECTED, PREDICTED


class InputQueue:
    """The inputs of one player, by frame.

    Confirmed inputs arrive in frame order (gaps are refused, the sender resends).
    Every prediction handed out is remembered, so a confirmed input that differs
    marks the first incorrect frame to roll back to.
    """

    def __init__(self, player: str, default_action: Any, predictor: Predictor) -> None:
        self.player = player
        self.default_action = default_action
        self.predictor = predictor
        self.confirmed: dict[int, Any] = {}
        self.last_confirmed = -1
        self.predictions: dict[int, Any] = {}
        self.first_incorrect: int | None = None
        self.disconnected_from: int | None = None

    def add_confirmed(self, frame: int, action: Any) -> bool:
        """Record the real input of `frame`. Returns False for a duplicate or a gap."""
        if frame != self.last_confirmed + 1 or self.disconnected_from is not None:
            return False
        self.confirmed[frame] = action
        self.last_confirmed = frame
        predicted = self.predictions.pop(frame, _NONE)
        if predicted is not _NONE and predicted != action:
            self._mark_incorrect(frame)
        return True

    def add_confirmed_run(self, frame: int, actions: list[Any]) -> None:
        """`add_confirmed` of `actions` for `frame`, `frame + 1`, ... (all refused on a gap)."""
        if frame != self.last_confirmed + 1 or self.disconnected_from is not None:
            return
        confirmed, predictions = self.confirmed, self.predictions
        for action in actions:
            confirmed[frame] = action
            if predictions:
                predicted = predictions.pop(frame, _NONE)
                if predicted is not _NONE and predicted != action:
                    self._mark_incorrect(frame)
            frame += 1
        self.last_confirmed = frame - 1

    def known_through(self) -> int:
        """The last frame whose input is final (a disconnected player's are all final)."""
        return 1 << 60 if self.disconnected_from is not None else self.last_confirmed

    def input_for(self, frame: int) -> tuple[Any, str]:
        """The input to simulate `frame` with, and its status; remembers predictions."""
        if self.disconnected_from is not None and frame >= self.disconnected_from:
            return self.default_action, DISCONNECTED
        if frame <= self.last_confirmed:
            return self.confirmed[frame], CONFIRMED
        last = self.confirmed.get(self.last_confirmed, self.default_action)
        predicted = self.predictor(self.player, last, frame)
        self.predictions[frame] = predicted
        return predicted, PREDICTED

    def final_input(self, frame: int) -> Any:
        """The input of a frame that is no longer open to prediction."""
        if self.disconnected_from is not None and frame >= self.disconnected_from:
            return self.default_action
        return self.confirmed[frame]

    def disconnect(self, frame: int) -> None:
        """From `frame` on this player's input is the default action.

        Confirmed inputs at or after `frame` are dropped; frames simulated with them or
        with a non-default prediction must be rolled back.
        """
        frame = max(frame, 0)
        changed = [f for f in self.confirmed if f >= frame and self.confirmed[f] != self.default_action]
        changed += [f for f, a in self.predictions.items() if f >= frame and a != self.default_action]
        for f in [f for f in self.confirmed if f >= frame]:
            del self.confirmed[f]
        self.last_confirmed = min(self.last_confirmed, frame - 1)
        self.predictions = {f: a for f, a in self.predictions.items() if f < frame}
        self.disconnected_from = frame
        if changed:
            self._mark_incorrect(min(changed))

    def take_first_incorrect(self) -> int | None:
        frame, self.first_incorrect = self.first_incorrect, None
        return frame

    def discard_before(self, frame: int) -> None:
        """Forget confirmed inputs older than `frame` (keeping the last one for prediction)."""
        keep_from = min(frame, self.last_confirmed)
        for old in [f for f in self.confirmed if f < keep_from]:
            del self.confirmed[old]

    def _mark_incorrect(self, frame: int) -> None:
        if self.first_incorrect is None or frame < self.first_incorrect:
            self.first_incorrect = frame


class _Missing:
    pass


_NONE = _Missing()
