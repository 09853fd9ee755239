"""The LLM strategy: one small base class; the OpenAI-compatible client is the implementation.

Nodes ask for JSON that a pydantic model validates. `structured` does the bounded retry
loop: it sends the validation problems back on the next try and, when the model's output
stays invalid (or the server is unreachable), raises LLMOutputError so the caller falls
back to its deterministic node and records why.
"""

from __future__ import annotations

import abc
import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from faceloop.errors import FaceloopError

if TYPE_CHECKING:
    from faceloop.agents.settings import AgentSettings

M = TypeVar("M", bound=BaseModel)
Message = dict[str, str]
# tried in this order: OpenAI and vLLM take json_schema; llama.cpp's server takes a schema
# inside json_object (and answers 500 to json_schema); some servers take neither
OutputMode = Literal["json_schema", "json_object_schema", "json_object", "text"]
_NEXT_MODE: dict[OutputMode, OutputMode] = {
    "json_schema": "json_object_schema",
    "json_object_schema": "json_object",
    "json_object": "text",
}


class LLMOutputError(FaceloopError):
    """The model gave no valid output within the allowed attempts."""

    def __init__(self, attempts: int, reason: str, give_up: bool = False) -> None:
        self.attempts = attempts
        self.reason = reason
        # the endpoint is down or the time budget is spent: later nodes should not ask
        self.give_up = give_up
        super().__init__(f"no valid LLM output after {attempts} attempt(s): {reason}")


class LLMUnreachable(FaceloopError):
    """The endpoint did not answer (connection refused, timeout): retrying will not help."""


class ChatModel(abc.ABC):
    """A chat model that answers a list of messages with text, JSON if a schema is given."""

    name: ClassVar[str] = "chat"

    @property
    @abc.abstractmethod
    def model(self) -> str:
        """The model name, recorded with every plan."""

    @abc.abstractmethod
    def complete(
        self,
        messages: list[Message],
        schema: type[BaseModel] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """The assistant's reply within timeout_s (None: the model's default). Raise
        LLMUnreachable when the endpoint cannot be reached or does not answer in time."""


class OpenAIChatModel(ChatModel):
    """Any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, Ollama, llama.cpp).

    Structured output is asked for as a JSON schema; a server that refuses that format is
    asked for a JSON object with the schema, then any JSON object, then plain text from which
    the JSON is parsed. The format that worked is remembered for the next call.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_tokens: int = 400,
        http_client: Any = None,
    ) -> None:
        import openai  # imported here: workflow code imports this package, never the client

        self._openai = openai
        # local servers take any key; the SDK refuses to start without one
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout_s,
            # no SDK retries: `structured` owns the retry loop and the time budget
            max_retries=0,
            http_client=http_client,
        )
        self._model = model
        self._max_tokens = max_tokens
        self._mode: OutputMode = "json_schema"

    @property
    def model(self) -> str:
        return self._model

    @classmethod
    def from_settings(cls, settings: AgentSettings) -> OpenAIChatModel:
        if not settings.llm_model:
            raise FaceloopError(
                "FACELOOP_LLM_MODEL is not set: set it to the model name the endpoint serves, "
                "or leave FACELOOP_LLM_BASE_URL unset to use the deterministic planner"
            )
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            settings.llm_model,
            settings.llm_base_url,
            key,
            settings.llm_timeout_s,
            settings.llm_max_tokens,
        )

    def _format(self, schema: type[BaseModel] | None) -> dict[str, Any] | None:
        if schema is None or self._mode == "text":
            return None
        if self._mode == "json_object":
            return {"type": "json_object"}
        if self._mode == "json_object_schema":
            return {"type": "json_object", "schema": schema.model_json_schema()}
        return {
            "type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()},
        }

    def complete(
        self,
        messages: list[Message],
        schema: type[BaseModel] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        oa = self._openai
        while True:
            fmt = self._format(schema)
            kwargs: dict[str, Any] = {}
            if timeout_s is not None:
                kwargs["timeout"] = timeout_s
            if fmt is not None:
                kwargs["response_format"] = fmt
            try:
                resp = self._client.chat.completions.create(
                    model=self._model,
                    messages=messages,  # type: ignore[arg-type]
                    temperature=0,
                    max_tokens=self._max_tokens,
                    **kwargs,
                )
            except oa.APIStatusError as exc:
                if fmt is not None and _rejects_format(exc):
                    # the server does not take this response_format: step down one format
                    self._mode = _NEXT_MODE[self._mode]
                    continue
                raise LLMUnreachable(f"HTTP {exc.status_code}: {exc.message}") from exc
            except (oa.APIConnectionError, oa.APITimeoutError, oa.AuthenticationError) as exc:
                raise LLMUnreachable(f"{type(exc).__name__}: {exc}") from exc
            choice = resp.choices[0] if resp.choices else None
            return (choice.message.content or "") if choice else ""


def _rejects_format(exc: Any) -> bool:
    if exc.status_code in (400, 422):
        return True
    # llama.cpp's server answers a response_format it cannot validate with a 500
    return exc.status_code == 500 and "response_format" in str(exc.message)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json(text: str) -> Any:
    """The first JSON object in a reply: whole, inside a code fence, or between braces."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON object in the reply ({len(text)} characters)")


def structured(
    chat: ChatModel,
    messages: list[Message],
    schema: type[M],
    check: Callable[[M], list[str]],
    attempts: int,
    deadline: float | None = None,
) -> tuple[M, int]:
    """A schema-valid reply that passes `check`, and how many attempts it took.

    Each retry repeats the request with the previous problems stated, never with the
    previous reply (which may carry whatever the brief smuggled in). `deadline` is a
    time.monotonic() value: no request runs past it.
    """
    reason = "no attempt made"
    for attempt in range(1, attempts + 1):
        timeout_s = None
        if deadline is not None:
            timeout_s = deadline - time.monotonic()
            if timeout_s < 1.0:
                raise LLMOutputError(
                    attempt - 1, f"LLM time budget spent; last problem: {reason}", True
                )
        msgs = list(messages)
        if attempt > 1:
            msgs.append(
                {
                    "role": "system",
                    "content": "Your previous reply was invalid: "
                    + reason[:600]
                    + ". Reply again with one JSON object that fixes this.",
                }
            )
        try:
            text = chat.complete(msgs, schema, timeout_s)
        except LLMUnreachable as exc:
            raise LLMOutputError(attempt, str(exc)[:300], give_up=True) from exc
        try:
            out = schema.model_validate(parse_json(text))
        except (ValueError, ValidationError) as exc:
            reason = _short(exc)
            continue
        problems = check(out)
        if not problems:
            return out, attempt
        reason = "; ".join(problems)
    raise LLMOutputError(attempts, reason[:500])


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )[:500]
    return str(exc)[:300]
