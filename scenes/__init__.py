"""The experiment definition: scene types, flow groups, validation and per-participant plans.

Pure Python (imports only `game`, `netcode` and the standard library) and no I/O:
string specs ("FILE.py:Class") are loaded by a `resolve` callable the caller passes.

    from scenes import *
    experiment = Experiment("pong-study", scenes=[
        Consent("consent", markdown="I agree to ..."),
        Page("instructions", "How to play", markdown="Use **W** and **S**."),
        Conditions(name="partner", arms={
            "human": [Match("pong", "game.games.pong:Pong", humans=["left", "right"], keys={"w": 1, "s": 2})],
            "ai": [Match("pong-ai", "game.games.pong:Pong", humans=["left"], ai={"right": "random"},
                         keys={"w": 1, "s": 2})],
        }),
        Survey("feedback", "Your experience", questions=[Likert("fun", "The game was fun.")]),
        End("end", completion_code="C0DE", redirect="https://app.prolific.com/submissions/complete?cc=C0DE"),
    ])
    experiment.validate(resolve=load_class)
"""
from __future__ import annotations

from game.adapters.onnx_policy import OnnxPolicy

from scenes.ai_seat import AISeat
from scenes.base import ClientContext, Scene
from scenes.errors import AnswerError, ExperimentError
from scenes.experiment import Experiment
from scenes.flow import Conditions, RandomOrder, Repeat, choose_arm
from scenes.markdown import markdown_to_html
from scenes.match import NETCODE_KEYS, Match, WaitingRoom
from scenes.policies import Bot, IdlePolicy, RandomPolicy, resolve_policy
from scenes.scene_types import OUTCOMES, Consent, End, Outcome, Page
from scenes.survey import Choice, FreeText, Likert, Question, Survey

__all__ = [
    "NETCODE_KEYS", "OUTCOMES", "AISeat", "AnswerError", "Bot", "Choice", "ClientContext", "Conditions", "Consent",
    "End", "Experiment", "ExperimentError", "FreeText", "IdlePolicy", "Likert", "Match", "OnnxPolicy", "Outcome",
    "Page", "Question", "RandomOrder", "RandomPolicy", "Repeat", "Scene", "Survey", "WaitingRoom", "choose_arm",
    "markdown_to_html", "resolve_policy",
]
