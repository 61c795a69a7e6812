"""The agent client's own checks, without a server: what `act` holds, the seat's reaction delay and
action repeat it applies, and the metadata cap it applies before anything is sent (the server applies
the same cap: tests/test_agents_hub.py)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.agent.client import Agent, AgentError
from app.live.agents import MAX_META_BYTES
from game.games.pong import Pong
from netcode.client import MatchClient


def agent_in_an_episode(policy: Any = None, pacing: dict[str, int] | None = None) -> Agent:
    agent = Agent("http://127.0.0.1:9", token="unused", policy=policy)
    client = MatchClient({"match": "m", "episode": 0, "seed": 1, "seat": "s1", "players": ["right"],
                          "peers": {"s0": ["left"]}, "fps": 60, "netcode": {"max_prediction": 32}},
                         Pong, clock=lambda: 0.0)   # its partner is silent: it predicts them for 32 frames
    agent._episode = agent._new_episode(client, pacing or {})
    return agent


def played(agent: Agent, frames: int, before_frame: Any = None) -> list[Any]:
    """The actions the agent's tick loop hands its netcode client on its next `frames` frames."""
    ep = agent._episode
    assert ep is not None
    ticked: list[Any] = []
    tick = ep.client.tick
    ep.client.tick = lambda actions: (ticked.append(actions.get("right")), tick(actions))   # type: ignore[method-assign]
    for frame in range(frames):
        assert ep.client.session.current_frame == frame
        if before_frame is not None:
            before_frame(frame)
        asyncio.run(agent._service(ep, ep.schedule.next_at))
    return ticked


class Alternating:
    """Up, down, up, ... one per decision, and metadata on each."""

    def __init__(self) -> None:
        self.decisions = 0

    def act(self, observation: Any) -> int:
        self.decisions += 1
        return 1 if self.decisions % 2 else 2

    def metadata(self) -> dict[str, int]:
        return {"decision": self.decisions}


def test_a_policy_plays_every_frame_without_pacing() -> None:
    agent = agent_in_an_episode(Alternating)
    assert played(agent, 6) == [1, 2, 1, 2, 1, 2]
    assert [m["meta"]["decision"] for m in agent._meta] == [1, 2, 3, 4, 5, 6]


def test_the_seats_reaction_delay_and_action_repeat_pace_the_agents_policy() -> None:
    agent = agent_in_an_episode(Alternating, {"reaction_delay_frames": 3, "action_repeat": 2})
    # decisions on frames 0, 2, 4, 6 (up, down, up, down), each played 3 frames later for 2 frames
    assert played(agent, 10) == [0, 0, 0, 1, 1, 2, 2, 1, 1, 2]
    assert [(m["frame"], m["meta"]["decision"]) for m in agent._meta] == [(0, 1), (2, 2), (4, 3), (6, 4), (8, 5)]


def test_the_pacing_applies_to_what_act_holds_too() -> None:
    agent = agent_in_an_episode(pacing={"reaction_delay_frames": 2, "action_repeat": 3})
    # act() before frames 0, 1, 2, ...: up, down, up, down, ...; sampled on frames 0, 3, 6 and played 2 later
    actions = played(agent, 9, lambda frame: agent.act(1 if frame % 2 == 0 else 2))
    assert actions == [0, 0, 1, 1, 1, 2, 2, 2, 1]


def test_act_holds_the_action_and_queues_metadata_for_the_next_frame() -> None:
    agent = agent_in_an_episode()
    agent.act(2, meta={"latency_ms": 12, "message": "up"})
    assert agent._episode is not None and agent._episode.held == {"right": 2}
    agent.act({"right": 1})
    assert agent._episode.held == {"right": 1}
    assert agent._meta == [{"episode": 0, "frame": 0, "meta": {"latency_ms": 12, "message": "up"}}]


def test_oversize_metadata_is_refused_before_it_is_sent() -> None:
    agent = agent_in_an_episode()
    with pytest.raises(AgentError, match=f"over the limit of {MAX_META_BYTES}") as refused:
        agent.act(1, meta={"message": "x" * MAX_META_BYTES})
    assert refused.value.code == "agent_meta_too_large" and agent._meta == []
    assert agent._episode is not None and agent._episode.held == {"right": 0}   # the action did not change either
    with pytest.raises(AgentError, match="JSON-able") as refused:
        agent.act(1, meta={"when": {1, 2}})
    assert refused.value.code == "agent_meta_invalid" and agent._meta == []


def test_play_needs_a_policy() -> None:
    import asyncio

    with pytest.raises(AgentError, match="play\\(\\) needs a policy"):
        asyncio.run(Agent("http://127.0.0.1:9", token="unused").play(1))
