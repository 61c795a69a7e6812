"""The agent client's own checks, without a server: what `act` holds and the metadata cap it applies
before anything is sent (the server applies the same cap: tests/test_agents_hub.py)."""
from __future__ import annotations

import pytest

from app.agent.client import Agent, AgentError, _Episode
from app.live.agents import MAX_META_BYTES
from game.games.pong import Pong
from netcode.client import MatchClient
from netcode.scheduler import FixedStep


def agent_in_an_episode() -> Agent:
    agent = Agent("http://127.0.0.1:9", token="unused")
    client = MatchClient({"match": "m", "episode": 0, "seed": 1, "seat": "s1", "players": ["right"],
                          "peers": {"s0": ["left"]}, "fps": 60}, Pong, clock=lambda: 0.0)
    agent._episode = _Episode(client, FixedStep(1 / 60, 0.0), {"right": 0})
    return agent


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
