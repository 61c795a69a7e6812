"""Each participant's way through the experiment: entering, the scene plan, advancing, outcomes.

The plan (the ordered scenes one participant sees) is rebuilt from the participant's
stored seed and condition arms, so a reload or a server restart continues exactly
where they were.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from jinja2 import Environment, PackageLoader

from app.live.entry import AnonymousLimit, EntryPause, normalise_platform_id
from app.live.metrics import Metrics
from app.live.protocol import ProtocolError
from app.data.store import Store
from scenes import AnswerError, ClientContext, Experiment, Match
from scenes.base import Scene

MAX_PARAMS = 32
MAX_PARAM_CHARS = 200
ACTIVE, COMPLETED = "active", "completed"
IDLE_CHECK_S = 1.0


@dataclass(frozen=True)
class Entered:
    """The participant who entered, or the page refusing them with its HTTP status
    (and, for 429, the seconds to wait)."""

    participant: str | None
    refusal: str | None = None
    status: int = 200
    retry_after: int | None = None


class Flow:
    """Moves participants through `experiment`, recording every step in `store`.

    `now` (seconds, monotonic) times idle participants and anonymous entries.
    """

    def __init__(self, experiment: Experiment, store: Store, metrics: Metrics | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.experiment = experiment
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics(process=False)
        self.now = now
        self._plans: dict[str, list[Scene]] = {}
        self._anonymous = AnonymousLimit(now)
        self.entries = EntryPause(store)
        # Active participant -> when they were last seen (connected, or entering); everyone active
        # in the store counts as seen at start, so a restart gives them the full idle time again.
        started = now()
        self._last_seen: dict[str, float] = {p.id: started for p in store.participants(ACTIVE)}
        self._last_idle_check = started

    def enter(self, params: dict[str, str], client: str = "") -> Entered:
        """A new participant from URL `params` (from address `client`), or the returning one with the same
        platform id; or the page refusing them (a bad or missing platform id, too many anonymous entries)."""
        if len(params) > MAX_PARAMS or any(len(k) > MAX_PARAM_CHARS or len(v) > MAX_PARAM_CHARS
                                           for k, v in params.items()):
            return Entered(None, _page("Invalid link", "This link has too many or too long parameters."), 400)
        param = self.experiment.platform_id_param
        raw = params.get(param, "")
        platform_id = None
        if raw.strip():
            try:
                platform_id = normalise_platform_id(raw, param, self.experiment.platform_id_case_sensitive)
            except ValueError as error:
                return Entered(None, _page("Invalid link", str(error)), 400)
        elif not self.experiment.allow_anonymous:
            return Entered(None, _page("Invalid link", f"This link lacks the {param} parameter, so the study "
                                       "cannot tell who you are. Please open the study from the link the study "
                                       "platform gave you."), 403)
        with self.store.lock:
            if platform_id is not None:
                existing = self.store.find_by_platform_id(platform_id)
                if existing is not None:
                    return self._returning(existing)
            if self.entries.paused:
                return Entered(None, _page("Not taking part now", self.experiment.entry_paused_message), 503, 60)
            if platform_id is None:
                wait = self._anonymous.wait(client)
                if wait:
                    seconds = max(1, round(wait))
                    return Entered(None, _page("Too many visits", "Too many people have started this study from "
                                               f"your address just now. Please try again in {seconds} seconds."),
                                   429, seconds)
            participant = self.store.create_participant(platform_id, params, secrets.randbelow(1 << 31))
            plan = self.plan(participant)
            self.store.set_plan(participant, [scene.id for scene in plan])
            self.store.enter_scene(participant, 0, plan[0].id, plan[0].kind)
            self._last_seen[participant] = self.now()
        self.metrics.entered(participant)
        return Entered(participant)

    def _returning(self, existing: Any) -> Entered:
        if existing.status == ACTIVE:
            self._last_seen[existing.id] = self.now()
            return Entered(existing.id)
        if existing.status == "timed_out":
            return Entered(None, _page("Session timed out", "You were away from the study for too long, so your "
                                       "session has ended and you cannot continue. Thank you for your time."), 403)
        return Entered(None, _page("Already taken part", "You have already taken part in this study, so you "
                                   "cannot take part again. Thank you for your interest."), 403)

    def expire_idle(self, present: Callable[[str], bool]) -> list[str]:
        """End, with the experiment's `idle_outcome`, the study of every active participant who has not been
        `present` (connected, or holding a seat) for `idle_timeout_s`; returns them. Checks once a second."""
        timeout, now = self.experiment.idle_timeout_s, self.now()
        if timeout is None or now - self._last_idle_check < IDLE_CHECK_S:
            return []
        self._last_idle_check = now
        expired = []
        for participant, seen in list(self._last_seen.items()):
            if present(participant):
                self._last_seen[participant] = now
            elif now - seen >= timeout:
                record = self.store.get_participant(participant)
                if record is not None and record.status == ACTIVE:
                    self.set_outcome(participant, self.experiment.idle_outcome, {"idle_s": round(now - seen)})
                    expired.append(participant)
                self._last_seen.pop(participant, None)
        return expired

    def plan(self, participant: str) -> list[Scene]:
        """The participant's scenes; condition arms are assigned (balanced) on first use."""
        if participant not in self._plans:
            record = self._participant(participant)
            arms = dict(record.condition or {})

            def arm_for(conditions: Any) -> str:
                if conditions.name not in arms:
                    with self.store.lock:
                        counts = self.store.arm_counts(conditions.name, list(conditions.arms))
                        arms[conditions.name] = conditions.choose(counts)
                        self.store.assign_condition(participant, conditions.name, arms[conditions.name])
                return arms[conditions.name]

            self._plans[participant] = self.experiment.plan(record.seed, arm_for)
        return self._plans[participant]

    def current(self, participant: str) -> tuple[int, Scene]:
        """The scene the participant is on: their plan's, or their outcome's page."""
        record = self._participant(participant)
        plan = self.plan(participant)
        if record.status not in (ACTIVE, COMPLETED):
            return len(plan), self.experiment.end_scene(record.status)
        return record.scene_index, plan[record.scene_index]

    def scene_payload(self, participant: str) -> dict[str, Any]:
        """The `scene` event for the participant's current scene."""
        index, scene = self.current(participant)
        record = self._participant(participant)
        context = ClientContext(participant=participant, params=record.url_params or {})
        return {"index": index, "count": len(self.plan(participant)), "scene": scene.to_client(context)}

    def advance(self, participant: str, index: int, data: Any) -> None:
        """Finish scene `index` with `data` (consent, page, survey); raises ProtocolError if refused."""
        current, scene = self._expect(participant, index)
        try:
            recorded = scene.parse_advance(data)
        except AnswerError as error:
            raise ProtocolError(str(error)) from None
        if scene.kind == "consent" and not recorded["accept"]:
            self.set_outcome(participant, "declined", recorded)
            return
        if scene.kind == "survey":
            self.store.save_answers(participant, scene.id, recorded["answers"])
        self._move_on(participant, current, recorded)

    def expect_match(self, participant: str, index: int) -> Any:
        """The match scene the participant is on at `index` (for `ready`)."""
        _, scene = self._expect(participant, index)
        if scene.kind != "match":
            raise ProtocolError(f"scene {index} is a {scene.kind}, not a match")
        return scene

    def finish_match(self, participant: str) -> None:
        """Move past the match scene the participant is on (the match ended, or went on without them)."""
        record = self._participant(participant)
        if record.status == ACTIVE and self.plan(participant)[record.scene_index].kind == "match":
            self._move_on(participant, record.scene_index, None)

    def match_interrupted(self, participant: str, scene_id: str, match_id: str) -> str | None:
        """A crash interrupted the participant's match `match_id` on scene `scene_id`: go on as the scene's
        `on_interrupted` says. Returns "continue" (moved past the scene) or "rerun" (its visit closed and
        a new one opened, to wait for a new match), or None when the participant is no longer on that scene."""
        record = self._participant(participant)
        plan = self.plan(participant)
        if record.status != ACTIVE or record.scene_index >= len(plan):
            return None
        scene = plan[record.scene_index]
        if scene.id != scene_id or not isinstance(scene, Match):
            return None
        data = {"match": match_id, "status": "interrupted"}
        if scene.on_interrupted == "rerun":
            self.store.advance_scene(participant, record.scene_index, data, record.scene_index, scene.id, scene.kind)
        else:
            self._move_on(participant, record.scene_index, data)
        return scene.on_interrupted

    def set_outcome(self, participant: str, outcome: str, data: Any = None) -> None:
        """End the participant's study with `outcome` (declined, waiting_timeout, ...)."""
        record = self._participant(participant)
        if record.status == ACTIVE:
            self.store.leave_scene(participant, record.scene_index, data)
            self.store.set_status(participant, outcome)
            self.metrics.participant_outcomes.labels(outcome).inc()
        self._last_seen.pop(participant, None)

    def _expect(self, participant: str, index: int) -> tuple[int, Scene]:
        current, scene = self.current(participant)
        record = self._participant(participant)
        if record.status != ACTIVE:
            raise ProtocolError(f"the study has ended for you ({record.status})")
        if index != current:
            raise ProtocolError(f"scene {index} is not your current scene ({current})")
        return current, scene

    def _move_on(self, participant: str, index: int, data: Any) -> None:
        plan = self.plan(participant)
        following = plan[index + 1]
        self.store.advance_scene(participant, index, data, index + 1, following.id, following.kind)
        if following.kind == "end":
            self.store.set_status(participant, COMPLETED)
            self.metrics.participants_completed.inc()
            self._last_seen.pop(participant, None)

    def _participant(self, participant: str) -> Any:
        record = self.store.get_participant(participant)
        if record is None:
            raise ProtocolError("unknown participant; reload the page")
        return record


_TEMPLATES = Environment(loader=PackageLoader("app.live"), autoescape=True)


def _page(title: str, text: str) -> str:
    """A page that only says `text` (templates/message.html)."""
    return _TEMPLATES.get_template("message.html").render(title=title, text=text)
