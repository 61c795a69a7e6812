"""The Experiment: scenes and groups in order, outcomes, validation and per-participant plans."""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

from scenes.base import Resolver, Scene, why_not_slug
from scenes.errors import ExperimentError
from scenes.flow import Conditions, RandomOrder, Repeat, flatten, walk_tree
from scenes.match import Match
from scenes.scene_types import OUTCOMES, End, Outcome

MAX_REPEAT = 100
DEFAULT_IDLE_TIMEOUT_S = 30 * 60
DEFAULT_PAUSED_MESSAGE = ("The study is not taking new participants at the moment. Please try again later, "
                          "or return it on the study platform.")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def _label(item: Any) -> str:
    """E.g. "survey 'feedback'", "random order"; "" for things that are neither scenes nor groups."""
    if isinstance(item, (list, tuple)):
        return "block"
    return item.label if isinstance(item, (Scene, RandomOrder, Repeat, Conditions)) else ""


def _where(prefix: str, index: int, item: Any) -> str:
    label = _label(item)
    return f"{prefix}scene {index} ({label})" if label else f"{prefix}scene {index}"


class Experiment:
    """A study: `scenes` (scenes and groups, the last one an End) and `outcomes`.

    `outcomes` maps "declined", "waiting_timeout", "partner_dropped", "excluded",
    "timed_out" and "error" to an `Outcome` (page text, completion code, redirect); missing
    ones get default texts. "completed" is the last scene, the End. `id` names the data folder.

    Entry: a new participant needs the URL parameter `platform_id_param` (default
    "PROLIFIC_PID"); a link without it is refused unless `allow_anonymous` (anonymous
    entries are then rate-limited per client address). Platform ids are trimmed and, unless
    `platform_id_case_sensitive`, compared in lower case (Prolific ids are hex, whatever
    the case a link carries). A participant away (no connection) for `idle_timeout_s`
    (None: never) ends with the outcome `idle_outcome`. While the researcher has paused new
    entries (the dashboard, /admin), a new arrival sees `entry_paused_message`.
    """

    def __init__(self, id: str, scenes: Sequence[Any], outcomes: Mapping[str, Outcome] | None = None, *,
                 platform_id_param: str = "PROLIFIC_PID", allow_anonymous: bool = False,
                 platform_id_case_sensitive: bool = False, idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
                 idle_outcome: str = "timed_out", entry_paused_message: str = DEFAULT_PAUSED_MESSAGE) -> None:
        self.id = id
        self.scenes = scenes
        self.outcomes = {} if outcomes is None else outcomes
        self.platform_id_param = platform_id_param
        self.allow_anonymous = allow_anonymous
        self.platform_id_case_sensitive = platform_id_case_sensitive
        self.idle_timeout_s = idle_timeout_s
        self.idle_outcome = idle_outcome
        self.entry_paused_message = entry_paused_message
        self._validated = False

    def __repr__(self) -> str:
        return f"Experiment({self.id!r})"

    # ------------------------------------------------------------------ validation

    def validate(self, resolve: Resolver | None = None) -> None:
        """Check everything; raise ExperimentError saying where and what to fix.

        `resolve(spec) -> class` loads "FILE.py:Class" specs; with it, matches are also checked
        against their game (players, config, keys, netcode) and AI policy specs are loaded.
        """
        reason = why_not_slug(self.id)
        if reason:
            raise ExperimentError(f"experiment id {reason}")
        if not isinstance(self.scenes, (list, tuple)) or not self.scenes:
            raise ExperimentError("scenes must be a non-empty list ending with an End scene")
        occurrences: list[tuple[Scene, str, dict[str, str]]] = []
        conditions: dict[str, tuple[Conditions, str]] = {}
        self._check_items(self.scenes, "", {}, occurrences, conditions, resolve)
        last = self.scenes[-1]
        if not isinstance(last, End):
            raise ExperimentError(f"the last scene must be an End (the page shown on completion), not {_label(last)}")
        for scene, where, _ in occurrences:
            if isinstance(scene, End) and scene is not last:
                raise ExperimentError(f"{where}: an End scene may only be the last scene of the experiment")
        self._check_unique(occurrences)
        self._check_outcomes(last)
        self._check_entry()
        self._validated = True

    def _check_items(self, items: Sequence[Any], prefix: str, arms: dict[str, str], occurrences: list,
                     conditions: dict, resolve: Resolver | None) -> None:
        for index, item in enumerate(items, 1):
            self._check_item(item, _where(prefix, index, item), arms, occurrences, conditions, resolve)

    def _check_item(self, item: Any, where: str, arms: dict[str, str], occurrences: list, conditions: dict,
                    resolve: Resolver | None) -> None:
        if isinstance(item, Scene):
            try:
                item.check(resolve)
            except ExperimentError as exc:
                raise ExperimentError(f"{where}: {exc}") from None
            occurrences.append((item, where, arms))
        elif isinstance(item, (list, tuple)):
            if not item:
                raise ExperimentError(f"{where}: a block (a list of scenes) must not be empty")
            self._check_items(item, f"{where} > ", arms, occurrences, conditions, resolve)
        elif isinstance(item, RandomOrder):
            if not isinstance(item.scenes, (list, tuple)) or not item.scenes:
                raise ExperimentError(f"{where}: a RandomOrder needs a non-empty list of scenes")
            self._check_items(item.scenes, f"{where} > ", arms, occurrences, conditions, resolve)
        elif isinstance(item, Repeat):
            if type(item.times) is not int or not 1 <= item.times <= MAX_REPEAT:
                raise ExperimentError(f"{where}: times must be an int from 1 to {MAX_REPEAT}, got {item.times!r}")
            inner = f"{where} > {_label(item.item)}" if _label(item.item) else where
            self._check_item(item.item, inner, arms, occurrences, conditions, resolve)
        elif isinstance(item, Conditions):
            self._check_conditions(item, where, arms, occurrences, conditions, resolve)
        else:
            raise ExperimentError(
                f"{where}: expected a scene (Consent, Page, Survey, Match, End), a group "
                f"(RandomOrder, Repeat, Conditions) or a list of them, got {type(item).__name__} {item!r:.40}")

    def _check_conditions(self, item: Conditions, where: str, arms: dict[str, str], occurrences: list,
                          conditions: dict, resolve: Resolver | None) -> None:
        reason = why_not_slug(item.name)
        if reason:
            raise ExperimentError(f"{where}: name {reason}")
        earlier = conditions.setdefault(item.name, (item, where))
        if earlier[0] is not item:
            raise ExperimentError(f"{where}: the name {item.name!r} is already used by {earlier[1]}; "
                                  "give each Conditions its own name")
        if not isinstance(item.arms, Mapping) or not item.arms:
            raise ExperimentError(f"{where}: arms must be a non-empty dict {{arm name: [scenes]}}")
        for arm in item.arms:
            reason = why_not_slug(arm)
            if reason:
                raise ExperimentError(f"{where}: arm name {reason}")
            children = item.arm_items(arm)
            if not children:
                raise ExperimentError(f"{where} > arm {arm!r}: an arm needs at least one scene")
            self._check_items(children, f"{where} > arm {arm!r} > ", {**arms, item.name: arm},
                              occurrences, conditions, resolve)

    @staticmethod
    def _check_unique(occurrences: list[tuple[Scene, str, dict[str, str]]]) -> None:
        """Each scene id once per possible plan; across arms only the very same scene may reappear."""
        seen: dict[str, list[tuple[Scene, str, dict[str, str]]]] = {}
        for scene, where, arms in occurrences:
            for other, other_where, other_arms in seen.get(scene.base_id, []):
                if other is not scene:
                    raise ExperimentError(f"{where}: the id {scene.base_id!r} is already used by {other_where}; "
                                          "scene ids must be unique")
                if not any(other_arms.get(name, arm) != arm for name, arm in arms.items()):
                    raise ExperimentError(f"{where}: this scene already appears at {other_where}; "
                                          "use Repeat(...) to show a scene more than once")
            seen.setdefault(scene.base_id, []).append((scene, where, arms))

    def _check_outcomes(self, last: End) -> None:
        if not isinstance(self.outcomes, Mapping):
            raise ExperimentError(
                f"outcomes must be a dict {{outcome name: Outcome(...)}}, got {type(self.outcomes).__name__}")
        for name, outcome in self.outcomes.items():
            if name == "completed":
                raise ExperimentError(f"outcomes['completed']: the completed outcome is the last scene ({last.label}); "
                                      "set its completion_code and redirect there")
            if name not in OUTCOMES:
                known = ", ".join(n for n in OUTCOMES if n != "completed")
                raise ExperimentError(f"outcomes: unknown outcome {name!r:.40}; known outcomes: {known}")
            if not isinstance(outcome, Outcome):
                raise ExperimentError(f"outcomes[{name!r}] must be an Outcome(...), got {type(outcome).__name__}")
            try:
                outcome.check()
            except ExperimentError as exc:
                raise ExperimentError(f"outcome {name!r}: {exc}") from None

    def _check_entry(self) -> None:
        if not isinstance(self.platform_id_param, str) or not _PARAM_NAME.fullmatch(self.platform_id_param):
            raise ExperimentError(f"platform_id_param must name a URL parameter (letters, digits, '_', '.', '-'), "
                                  f"got {self.platform_id_param!r:.40}")
        for name in ("allow_anonymous", "platform_id_case_sensitive"):
            if not isinstance(getattr(self, name), bool):
                raise ExperimentError(f"{name} must be True or False, got {getattr(self, name)!r:.40}")
        timeout = self.idle_timeout_s
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < float("inf")):
            raise ExperimentError(f"idle_timeout_s must be a positive number of seconds or None (never), "
                                  f"got {timeout!r:.40}")
        if self.idle_outcome not in OUTCOMES or self.idle_outcome == "completed":
            known = ", ".join(n for n in OUTCOMES if n != "completed")
            raise ExperimentError(f"idle_outcome must be one of {known}, got {self.idle_outcome!r:.40}")
        if not isinstance(self.entry_paused_message, str) or not self.entry_paused_message.strip():
            raise ExperimentError(f"entry_paused_message must be a non-empty text, got {self.entry_paused_message!r:.40}")

    # ------------------------------------------------------------------ use

    def plan(self, seed: int, arm_for: Callable[[Conditions], str]) -> list[Scene]:
        """One participant's ordered scenes: RandomOrder shuffled with `Rng(seed)`, Repeat expanded
        (ids "id#2"...), each Conditions replaced by the arm `arm_for(conditions)` names.
        The same seed and arms always give the same plan."""
        if type(seed) is not int:
            raise TypeError(f"plan() needs an int seed, got {type(seed).__name__}")
        if not self._validated:
            self.validate()
        return flatten(self.scenes, seed, arm_for)

    def _distinct(self, kind: type) -> list[Any]:
        found: list[Any] = []
        for item in walk_tree(self.scenes):
            if isinstance(item, kind) and not any(item is f for f in found):
                found.append(item)
        return found

    def match_scenes(self) -> list[Match]:
        """Every Match of the experiment (all arms), once each, in definition order."""
        return self._distinct(Match)

    def conditions(self) -> list[Conditions]:
        """Every Conditions of the experiment, in definition order."""
        return self._distinct(Conditions)

    def scene_by_id(self, scene_id: str) -> Scene:
        """The scene a plan shows under `scene_id`: a base id, a visit "id#n", or an outcome page "end:<name>"."""
        if scene_id.startswith("end:") and scene_id[4:] in OUTCOMES:
            return self.end_scene(scene_id[4:])
        base, sep, visit = scene_id.partition("#")
        for scene in self._distinct(Scene):
            if scene.base_id == base:
                if not sep:
                    return scene
                if visit.isdigit() and visit.isascii() and int(visit) >= 2:
                    return scene.revisit(int(visit))
        raise KeyError(f"no scene with id {scene_id!r} in experiment {self.id!r}")

    def outcome(self, name: str) -> Outcome:
        """The Outcome for `name` ("completed" is built from the last scene, the End)."""
        if name not in OUTCOMES:
            raise KeyError(f"unknown outcome {name!r}; known outcomes: {', '.join(OUTCOMES)}")
        if name == "completed":
            end = self.scenes[-1]
            return Outcome(completion_code=end.completion_code, redirect=end.redirect, title=end.title,
                           html=end.html, markdown=end.markdown)
        return self.outcomes.get(name) or Outcome()

    def end_scene(self, name: str) -> End:
        """The End page for an outcome: the last scene for "completed", else "end:<name>"."""
        if name == "completed":
            return self.scenes[-1]
        return self.outcome(name).end_scene(name)
