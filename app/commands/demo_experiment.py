"""The built-in demo experiment behind `coplay demo`: a couple of minutes, start to end."""
from __future__ import annotations

from scenes import Choice, Consent, End, Experiment, FreeText, Likert, Match, Page, Survey, WaitingRoom

PONG_KEYS = {"ArrowUp": 1, "ArrowDown": 2, "w": 1, "s": 2}
COOKING_KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4, " ": 5}

EXPERIMENT = Experiment(
    id="demo",
    scenes=[
        Consent(
            id="consent",
            markdown="This is a **demo** of coplay. You will play two short games, one with another "
                     "person (or an AI if nobody else arrives) and one with an AI partner, then answer "
                     "three questions. It takes about two minutes. No personal data is collected.",
        ),
        Page(
            id="instructions", title="How to play",
            markdown="**Pong**: move your paddle with the arrow keys (or W/S). First to 3 points wins.\n\n"
                     "**Kitchen**: walk with the arrow keys, press space to pick up, put down and serve. "
                     "Bring three onions to the pot, wait for the soup, plate it with a dish and serve it.",
        ),
        Match(
            id="pong", title="Pong", game="game.games.pong:Pong",
            config={"max_score": 3, "max_frames": 1800}, humans=("left", "right"), episodes=1, fps=60,
            waiting_room=WaitingRoom(timeout_s=20, on_timeout="ai",
                                     message="Waiting for another participant; an AI will join if nobody does."),
            on_partner_drop="ai", fill_policy="game.games.policies:PongTracker", keys=PONG_KEYS,
        ),
        Match(
            id="kitchen", title="Kitchen", game="game.games.cooking:Cooking",
            config={"time_limit": 240}, humans=("chef_1",), ai={"chef_2": "random"}, episodes=1, fps=8,
            waiting_room=WaitingRoom(timeout_s=5, on_timeout="ai"), keys=COOKING_KEYS,
        ),
        Survey(
            id="survey", title="A few questions",
            questions=[
                Likert("fun", "The games were fun.", scale=5, labels=("disagree", "agree")),
                Choice("partner", "Do you think your Pong opponent was a person?",
                       options=["yes", "no", "not sure"]),
                FreeText("comments", "Anything else?", max_length=500),
            ],
        ),
        End(id="end", html="<p>Thank you for trying coplay.</p>", completion_code="COPLAY-DEMO"),
    ],
    allow_anonymous=True,   # anyone with the link may try it (anonymous entries are rate-limited per address)
)
