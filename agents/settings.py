"""The agents' LLM settings are declared with every other setting in faceloop/settings.py
(FACELOOP_LLM_BASE_URL, FACELOOP_LLM_MODEL, FACELOOP_LLM_API_KEY ...); these names stay for
the agents' code and tests."""

from __future__ import annotations

from faceloop.settings import Settings as AgentSettings
from faceloop.settings import get_settings as get_agent_settings

__all__ = ["AgentSettings", "get_agent_settings"]
