"""Remote agents: external processes that play an experiment's remote AI seats (see app.agent.client)."""
from app.agent.client import Agent, AgentError, MatchRecord, Step, connect
from app.agent.sync import SyncAgent

__all__ = ["Agent", "AgentError", "MatchRecord", "Step", "SyncAgent", "connect"]
