"""The capacity benchmark's experiment (benchmarks/capacity.py): no consent or pages, straight
into one 60 fps Pong match of COPLAY_CAPACITY_FRAMES frames (default 1800: 30 s) between two
participants, then the end page. The score limit is out of reach, so every match lasts the
full time; the long waiting room means a burst of arrivals pairs up without AI fill-ins."""
from __future__ import annotations

import os

from scenes import End, Experiment, Match, WaitingRoom

FRAMES = int(os.environ.get("COPLAY_CAPACITY_FRAMES", "1800"))

EXPERIMENT = Experiment(id="pong-capacity", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1_000_000, "max_frames": FRAMES},
          humans=("left", "right"), episodes=1, fps=60,
          waiting_room=WaitingRoom(timeout_s=300, on_timeout="ai"), on_partner_drop="ai", fill_policy="random"),
    End(id="end", html="<p>Thanks</p>", completion_code="CAPACITY"),
])
