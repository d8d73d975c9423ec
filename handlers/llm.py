"""The ``call_llm_service`` handler: an OpenAI-compatible chat completion.

The provider comes from the node config (``base_url``, ``model``) or the settings
``TRELLIS_LLM_BASE_URL`` / ``TRELLIS_LLM_MODEL``, read at call time. Without a provider the
node fails: there is no canned answer. HTTP goes through :func:`handlers.http.send`, so the
egress policy, redirects, retries and the 10 MB limit are those of ``call_external_service``.

Keys: ``TRELLIS_LLM_API_KEY`` is sent only to the configured ``TRELLIS_LLM_BASE_URL`` (a node
that points ``base_url`` elsewhere does not receive it); ``api_key_env`` names another
environment variable holding the key, and must end in ``_API_KEY`` so that a workflow cannot
send arbitrary process secrets (``SECRET_KEY``, ``DATABASE_URL``...) to a server it chooses.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from django.conf import settings

from .egress import static_refusal
from .http import error_excerpt, is_retryable_status, send
from .registry import Context, Handler, HandlerError, register

NO_PROVIDER = (
    "call_llm_service has no provider: set TRELLIS_LLM_BASE_URL (and TRELLIS_LLM_MODEL) "
    "or give base_url/model in the node config"
)
API_KEY_ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*_API_KEY$"
EMIT_INTERVAL = 0.05  # seconds: at most one node.token event this often...
EMIT_CHARS = 200  # ...unless this many characters are waiting


def _setting(name: str) -> str:
    return str(getattr(settings, name, "") or "").strip()


def _normalize_base(url: str) -> str:
    return url.strip().rstrip("/")


def provider_message(text: str) -> str:
    """The error message of an OpenAI-style error body (else the start of the body)."""
    try:
        data = json.loads(text)
    except ValueError:
        return error_excerpt(text)
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error.get("error")
        elif isinstance(error, str):
            message = error
    if not message:
        return error_excerpt(text)
    return str(message)[:500]


def _message_text(content: Any) -> str:
    """``message.content``: a string, null, or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


class _TokenBatcher:
    """Collects streamed deltas and emits them as ``node.token`` events in batches."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.parts: list[str] = []
        self.pending: list[str] = []
        self.pending_chars = 0
        self.last_emit = time.monotonic()

    def add(self, delta: str) -> None:
        if not delta:
            return
        self.parts.append(delta)
        self.pending.append(delta)
        self.pending_chars += len(delta)
        self.maybe_flush()

    def maybe_flush(self) -> None:
        if self.pending and (
            self.pending_chars >= EMIT_CHARS or time.monotonic() - self.last_emit >= EMIT_INTERVAL
        ):
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.ctx.emit("node.token", {"delta": "".join(self.pending)})
            self.pending, self.pending_chars = [], 0
            self.last_emit = time.monotonic()

    @property
    def text(self) -> str:
        return "".join(self.parts)


@register("call_llm_service")
class CallLLMService(Handler):
    """Ask an OpenAI-compatible chat completion endpoint (``POST {base_url}/chat/completions``).

    Output: ``{"result": text, "model": model named by the provider, "usage": {...}}``.
    With ``stream: true`` the answer is read as server-sent events and its text is emitted
    as ``node.token`` events (``{"delta": text}``, batched) while it arrives. Connection
    errors, 5xx and 429 answers are retried in the handler; other HTTP errors fail the node
    with the provider's error message.
    """

    description = "OpenAI-compatible chat completion, optionally streaming tokens as events."
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt"],
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "description": "The user message."},
            "system": {"type": "string", "description": "Optional system message."},
            "model": {
                "type": "string",
                "minLength": 1,
                "description": "Model name (default: TRELLIS_LLM_MODEL).",
            },
            "base_url": {
                "type": "string",
                "minLength": 1,
                "description": "API base URL, e.g. https://api.openai.com/v1 "
                "(default: TRELLIS_LLM_BASE_URL).",
            },
            "api_key_env": {
                "type": "string",
                "pattern": API_KEY_ENV_PATTERN,
                "description": "Name of an environment variable (ending in _API_KEY) holding "
                "the API key (default: TRELLIS_LLM_API_KEY, for the default base URL only).",
            },
            "temperature": {
                "type": "number",
                "minimum": 0,
                "maximum": 2,
                "description": "Sampling temperature.",
            },
            "max_tokens": {
                "type": "integer",
                "minimum": 1,
                "description": "Maximum number of tokens to generate.",
            },
            "stream": {
                "type": "boolean",
                "default": False,
                "description": "Stream the answer, emitting node.token events as it arrives.",
            },
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 120,
                "description": "Seconds allowed per attempt (also capped by the node deadline).",
            },
            "retries": {
                "type": "integer",
                "minimum": 0,
                "maximum": 10,
                "default": 3,
                "description": "In-handler retries on connection errors, 5xx and 429 answers.",
            },
        },
    }

    def check_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        problem = static_refusal(config.get("base_url"))
        return [("base_url", problem)] if problem else []

    def run(self, ctx: Context, config: dict[str, Any]) -> Any:
        default_base = _normalize_base(_setting("TRELLIS_LLM_BASE_URL"))
        base_url = _normalize_base(str(config.get("base_url") or "")) or default_base
        model = str(config.get("model") or "").strip() or _setting("TRELLIS_LLM_MODEL")
        if not base_url or not model:
            raise HandlerError(NO_PROVIDER, retryable=False)
        api_key = self._api_key(config, base_url, default_base)
        stream = bool(config.get("stream", False))

        prompt = config["prompt"]
        messages: list[dict[str, str]] = []
        if config.get("system"):
            messages.append({"role": "system", "content": str(config["system"])})
        messages.append(
            {"role": "user", "content": prompt if isinstance(prompt, str) else json.dumps(prompt)}
        )
        body: dict[str, Any] = {"model": model, "messages": messages}
        if config.get("temperature") is not None:
            body["temperature"] = config["temperature"]
        if config.get("max_tokens") is not None:
            body["max_tokens"] = config["max_tokens"]
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if stream:
            body["stream"] = True
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"

        reply = send(
            ctx,
            "POST",
            f"{base_url}/chat/completions",
            headers=headers,
            json_body=body,
            timeout=float(config.get("timeout") or 120),
            retries=int(config.get("retries", 3)),
        )
        where = f"call_llm_service: {base_url}"
        if not reply.ok:
            message = provider_message(reply.text())
            raise HandlerError(
                f"{where} answered {reply.status}: {message}",
                retryable=is_retryable_status(reply.status),
                data={"status": reply.status},
            )
        if stream and reply.content_type() == "text/event-stream":
            return self._read_stream(ctx, reply, model, where)

        text = reply.text()
        try:
            data = json.loads(text)
        except ValueError:
            raise HandlerError(
                f"{where} answered with something that is not JSON: {error_excerpt(text)}",
                retryable=False,
            ) from None
        if isinstance(data, dict) and data.get("error"):
            raise HandlerError(f"{where} answered an error: {provider_message(text)}")
        try:
            content = data["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise HandlerError(
                f"{where} answered without choices[0].message: {error_excerpt(text)}",
                retryable=False,
            ) from None
        result = _message_text(content)
        if stream:  # asked to stream, answered in one piece: still show the text as tokens
            ctx.emit("node.token", {"delta": result})
        return {
            "result": result,
            "model": data.get("model") or model,
            "usage": data.get("usage") or {},
        }

    @staticmethod
    def _api_key(config: dict[str, Any], base_url: str, default_base: str) -> str:
        env_name = config.get("api_key_env")
        if env_name:
            env_name = str(env_name)
            if not re.match(API_KEY_ENV_PATTERN, env_name):
                raise HandlerError(
                    f"api_key_env {env_name!r} must name an environment variable ending in "
                    "_API_KEY",
                    retryable=False,
                )
            key = os.environ.get(env_name, "").strip()
            if not key:
                raise HandlerError(
                    f"call_llm_service: environment variable {env_name} (api_key_env) is not set",
                    retryable=False,
                )
            return key
        if base_url == default_base:
            return _setting("TRELLIS_LLM_API_KEY")
        return ""

    @staticmethod
    def _read_stream(ctx: Context, reply: Any, model: str, where: str) -> dict[str, Any]:
        """Read server-sent events until ``data: [DONE]``, emitting batched tokens."""
        batcher = _TokenBatcher(ctx)
        seen_model = ""
        usage: dict[str, Any] = {}
        events = 0
        done = False
        buffer = b""
        data_lines: list[str] = []

        def dispatch(payload: str) -> bool:
            """Handle one event's data; True at the end of the stream."""
            nonlocal seen_model, usage, events
            if payload.strip() == "[DONE]":
                return True
            try:
                event = json.loads(payload)
            except ValueError:
                return False  # keep-alives and the like
            if not isinstance(event, dict):
                return False
            if event.get("error"):
                raise HandlerError(
                    f"{where} reported an error while streaming: {provider_message(payload)}",
                    retryable=True,
                )
            events += 1
            seen_model = event.get("model") or seen_model
            if event.get("usage"):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    delta = choice.get("delta") or choice.get("message") or {}
                    if isinstance(delta, dict):
                        batcher.add(_message_text(delta.get("content")))
            return False

        for chunk in reply.iter_bytes(incremental=True):
            if ctx.is_cancelled():
                reply.close()
                raise HandlerError("cancelled while streaming the answer", retryable=False)
            buffer += chunk
            while not done and b"\n" in buffer:
                raw_line, buffer = buffer.split(b"\n", 1)
                line = raw_line.decode("utf-8", errors="replace").rstrip("\r")
                if not line:
                    if data_lines:
                        done = dispatch("\n".join(data_lines))
                        data_lines = []
                elif line.startswith("data:"):
                    value = line[5:]
                    data_lines.append(value[1:] if value.startswith(" ") else value)
                # other fields (event:, id:, retry:) and comments (":") are ignored
            batcher.maybe_flush()
            if done:
                reply.close()
                break
        if not done and data_lines:
            done = dispatch("\n".join(data_lines))
        batcher.flush()
        if not done and not events:
            raise HandlerError(f"{where} closed the event stream without an answer", retryable=True)
        return {"result": batcher.text, "model": seen_model or model, "usage": usage}
