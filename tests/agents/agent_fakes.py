"""FakeChatModel: a scripted stand-in for an LLM, for unit tests only.

The real path (an OpenAI-compatible server running a real model) is in test_llm_server.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from faceloop.agents.llm import ChatModel, LLMUnreachable, Message

Reply = str | Exception | Callable[[list[Message]], str]


class FakeChatModel(ChatModel):
    """Answers each call with the next scripted reply (the last one repeats)."""

    name = "fake"

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.calls: list[list[Message]] = []
        self.timeouts: list[float | None] = []

    @property
    def model(self) -> str:
        return "fake-chat"

    def complete(
        self,
        messages: list[Message],
        schema: type[BaseModel] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        self.calls.append(messages)
        self.timeouts.append(timeout_s)
        reply = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply(messages)
        return reply


def unreachable() -> LLMUnreachable:
    return LLMUnreachable("APIConnectionError: Connection refused")


def as_json(**fields: Any) -> str:
    return json.dumps(fields)
