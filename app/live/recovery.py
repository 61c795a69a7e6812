"""Closing the matches a crashed server left running, when the server starts again.

A match still `active` in the store when the server starts was running when its process
died (nothing else ends a match). Each one gets a `match_end` event (reason "interrupted")
at the end of its recording, status `interrupted` in the store, and its participants go
on as the match scene's `on_interrupted` says (see `Flow.match_interrupted`).

The steps run in an order that a second crash during recovery cannot spoil: recording,
then participants, then the match status; each is safe to repeat (at worst a "rerun"
participant's match scene visit is closed and reopened twice).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from app.data.recording import RecordingError, close_after_crash, read_recording
from app.live.flow import Flow

log = logging.getLogger("coplay.server")
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Interrupted:
    """One match closed at start-up, and what became of its participants: {participant: "continue",
    "rerun", None (no longer on that scene) or "error"}."""

    match: str
    participants: dict[str, str | None]


def close_interrupted_matches(flow: Flow) -> list[Interrupted]:
    """Close every match left `active` in `flow.store`; call once, before the server takes connections."""
    store = flow.store
    closed = []
    for match in store.matches(status="active"):
        close_interrupted_recording(os.path.join(store.directory, match.recording), match.id)
        choices = {row["participant_id"]: _go_on(flow, row["participant_id"], match.scene_id, match.id)
                   for row in store.match_participants(match_id=match.id)}
        store.end_match(match.id, INTERRUPTED)
        store.log_event("match_interrupted", {"participants": choices}, match_id=match.id)
        log.warning("match %s was running when the server stopped: closed as interrupted (%s)", match.id,
                    ", ".join(f"{p}: {c or 'elsewhere'}" for p, c in choices.items()) or "no participants")
        closed.append(Interrupted(match.id, choices))
    return closed


def _go_on(flow: Flow, participant: str, scene_id: str, match_id: str) -> str | None:
    """`Flow.match_interrupted`, or "error" (logged) when the participant's stored place makes no sense:
    one participant must not keep the server from starting."""
    try:
        return flow.match_interrupted(participant, scene_id, match_id)
    except (LookupError, ValueError) as error:
        log.error("match %s: participant %s cannot go on after the crash: %s", match_id, participant, error)
        return "error"


def close_interrupted_recording(path: str, match_id: str) -> None:
    """Append `match_end` (reason interrupted) unless the recording already ended or cannot take it."""
    try:
        recording = read_recording(path)
        if recording.ended:
            return
        episode = max(recording.episodes) if recording.episodes else None
        close_after_crash(path, {"reason": INTERRUPTED}, episode)
    except (OSError, RecordingError) as error:  # no file, or not even a header: nothing to close
        log.warning("match %s: its recording cannot be closed (%s)", match_id, error)
