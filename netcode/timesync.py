"""Time sync: how many frames this peer runs ahead of another, and when to wait."""
from __future__ import annotations

from collections import deque

WINDOW = 40            # samples averaged
MIN_WAIT_FRAMES = 2    # recommend waiting only when at least this far ahead
MAX_WAIT_FRAMES = 9    # never more at once (GGPO's bound): a wrong estimate costs a hiccup, not a freeze
RECOMMEND_EVERY = 60   # frames between two wait recommendations


class TimeSync:
    """Keeps the local and remote frame advantages and averages them.

    Local advantage: our frame minus the remote's frame, estimated for now from the
    frame it last reported plus half a round-trip. The remote reports its own view;
    half the difference is how far ahead we are (GGPO's rule).
    """

    def __init__(self) -> None:
        self.local: deque[float] = deque(maxlen=WINDOW)
        self.remote: deque[float] = deque(maxlen=WINDOW)

    def update(self, local_advantage: float, remote_advantage: float) -> None:
        self.local.append(local_advantage)
        self.remote.append(remote_advantage)

    def frames_ahead(self) -> float:
        if not self.local:
            return 0.0
        local = sum(self.local) / len(self.local)
        remote = sum(self.remote) / len(self.remote)
        return (local - remote) / 2.0

    def wait_frames(self) -> int:
        ahead = self.frames_ahead()
        return min(int(ahead), MAX_WAIT_FRAMES) if ahead >= MIN_WAIT_FRAMES else 0
