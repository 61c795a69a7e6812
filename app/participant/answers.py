"""What a scripted participant answers and presses: valid survey answers and per-player policies."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from game.env import action_space_for, default_action_for
from game.rng import Rng
from scenes.policies import BUILTIN_POLICIES, Bot, resolve_policy

# policy(player, observation, frame) -> action
PolicyFn = Callable[[str, Any, int], Any]


# ----------------------------------------------------------------------------- survey answers


def generate_answers(
    questions: Sequence[Mapping[str, Any]], rng: Rng, given: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Valid answers for a survey's questions: `given` ones as they are, the others random (seeded).

    likert: an int in 1..scale; choice: one option (a list of at least one when
    `multiple`); text: a few words within max_length; number/slider: an int within
    min..max. A question of an unknown kind is answered only when `given` has it.
    """
    given = given or {}
    answers: dict[str, Any] = {}
    for question in questions:
        qid = question.get("id")
        if not isinstance(qid, str):
            continue
        if qid in given:
            answers[qid] = given[qid]
            continue
        value = _random_answer(question, rng)
        if value is not None:
            answers[qid] = value
    return answers


_WORDS = ("fine", "fast", "partner", "ball", "good", "hard", "fun", "played", "round", "team", "easy", "ok")


def _option_value(option: Any) -> Any:
    if isinstance(option, Mapping):
        return option.get("value", option.get("id", option.get("label")))
    return option


def _random_answer(question: Mapping[str, Any], rng: Rng) -> Any:
    kind = question.get("kind")
    if kind == "likert":
        scale = question.get("scale", 7)
        return rng.randint(1, scale if isinstance(scale, int) and scale >= 1 else 7)
    if kind == "choice":
        options = [_option_value(o) for o in question.get("options") or []]
        if not options:
            return None
        if question.get("multiple"):
            picked = [o for o in options if rng.random() < 0.5] or [rng.choice(options)]
            return picked
        return rng.choice(options)
    if kind == "text":
        limit = question.get("max_length", 1000)
        limit = limit if isinstance(limit, int) and limit >= 1 else 1000
        minimum = question.get("min_length", 1)
        minimum = minimum if isinstance(minimum, int) and 0 <= minimum <= limit else 1
        words = [rng.choice(_WORDS) for _ in range(1 + rng.randbelow(8))]
        text = " ".join(words)
        while len(text) < minimum:
            text += " " + rng.choice(_WORDS)
        return text[:limit].strip() or "x" * min(limit, max(minimum, 1))
    if kind in ("number", "slider"):
        low, high = question.get("min", 0), question.get("max", 100)
        if not (isinstance(low, int) and isinstance(high, int) and low <= high):
            low, high = 0, 100
        step = question.get("step", 1)
        step = step if isinstance(step, int) and step >= 1 else 1
        return low + step * rng.randbelow((high - low) // step + 1)
    return None


# ----------------------------------------------------------------------------- policies


class Policy:
    """Inputs for the local players of one episode: "random" or "idle" (scenes' built-in policies,
    seeded), or a callable policy(player, observation, frame)."""

    def __init__(self, kind: str | PolicyFn, env: Any, players: Sequence[str], seed: int) -> None:
        self.fn = kind if callable(kind) else None
        if self.fn is None and kind not in BUILTIN_POLICIES:
            raise ValueError(f"policy must be 'random', 'idle' or a callable, got {kind!r}")
        self.bots = {} if not isinstance(kind, str) else {
            p: Bot(resolve_policy(kind), player=p, action_space=action_space_for(env, p),
                   default_action=default_action_for(env, p), seed=seed + i)
            for i, p in enumerate(players)
        }
        self.players = tuple(players)

    def actions(self, observations: Mapping[str, Any], frame: int) -> dict[str, Any]:
        if self.fn is not None:
            return {p: self.fn(p, observations.get(p), frame) for p in self.players}
        return {p: bot.act(observations.get(p)) for p, bot in self.bots.items()}
