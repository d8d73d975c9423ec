"""``call_llm_service`` against a local OpenAI-compatible server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from handlers.registry import Context, HandlerError, get_handler
from tests.handler_helpers import make_ctx, run_handler
from tests.servers import JsonServer, OpenAIServer, Reply, refused_url

# json_server, openai_server and local_egress come from tests/servers.py via conftest.py
pytestmark = pytest.mark.usefixtures("local_egress")


class Recorder:
    """An emit callback keeping every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.times: list[float] = []

    def __call__(self, kind: str, data: Any) -> None:
        self.events.append((kind, data))
        self.times.append(time.monotonic())

    def tokens(self) -> list[str]:
        return [data["delta"] for kind, data in self.events if kind == "node.token"]


def call(config: dict[str, Any], ctx: Context | None = None) -> Any:
    return run_handler("call_llm_service", config, ctx)


@pytest.fixture
def provider(settings: Any) -> Any:
    """A key-checking OpenAIServer configured as the default provider."""
    with OpenAIServer(api_key="sk-test") as server:
        settings.TRELLIS_LLM_BASE_URL = server.base_url
        settings.TRELLIS_LLM_MODEL = "gpt-test"
        settings.TRELLIS_LLM_API_KEY = "sk-test"
        yield server


@pytest.mark.parametrize(
    "config",
    [{"prompt": "hi"}, {"prompt": "hi", "model": "m"}, {"prompt": "hi", "base_url": "http://x"}],
)
def test_without_a_provider_the_node_fails(config: dict[str, Any], settings: Any) -> None:
    settings.TRELLIS_LLM_BASE_URL = ""
    settings.TRELLIS_LLM_MODEL = ""
    settings.TRELLIS_LLM_API_KEY = "sk-unused"
    with pytest.raises(HandlerError) as info:
        call(config)
    assert info.value.retryable is False
    assert "TRELLIS_LLM_BASE_URL" in info.value.message
    assert "TRELLIS_LLM_MODEL" in info.value.message


def test_answer_from_the_provider(provider: OpenAIServer) -> None:
    out = call(
        {
            "prompt": "Summarize the following posts: [1, 2]",
            "system": "Be brief.",
            "temperature": 0.2,
            "max_tokens": 50,
        }
    )
    assert out["result"] == "summary of: Summarize the following posts: [1, 2]"
    assert out["model"] == "gpt-test"
    assert out["usage"]["completion_tokens"] == 8
    assert set(out["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    (request,) = provider.completions
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.json() == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Summarize the following posts: [1, 2]"},
        ],
        "temperature": 0.2,
        "max_tokens": 50,
    }


def test_node_config_overrides_the_model(provider: OpenAIServer) -> None:
    out = call({"prompt": "x", "model": "other-model"})
    assert out["model"] == "other-model"
    assert provider.completions[0].json()["model"] == "other-model"


def test_provider_errors_carry_the_provider_message(provider: OpenAIServer, settings: Any) -> None:
    settings.TRELLIS_LLM_API_KEY = "sk-wrong"
    with pytest.raises(HandlerError) as info:
        call({"prompt": "x"})
    assert info.value.retryable is False
    assert info.value.message == (
        f"call_llm_service: {provider.base_url} answered 401: Incorrect API key provided."
    )


def test_default_key_is_not_sent_to_another_base_url(provider: OpenAIServer) -> None:
    with OpenAIServer() as elsewhere:
        out = call({"prompt": "x", "base_url": elsewhere.base_url + "/"})
        (request,) = elsewhere.completions
    assert out["result"] == "summary of: x"
    assert "Authorization" not in request.headers


def test_api_key_env(provider: OpenAIServer, settings: Any, monkeypatch: Any) -> None:
    settings.TRELLIS_LLM_API_KEY = ""
    monkeypatch.setenv("OTHER_LLM_API_KEY", "sk-test")
    assert call({"prompt": "x", "api_key_env": "OTHER_LLM_API_KEY"})["result"] == "summary of: x"
    assert provider.completions[0].headers["Authorization"] == "Bearer sk-test"
    monkeypatch.delenv("OTHER_LLM_API_KEY")
    with pytest.raises(HandlerError, match="OTHER_LLM_API_KEY .api_key_env. is not set"):
        call({"prompt": "x", "api_key_env": "OTHER_LLM_API_KEY"})


def test_api_key_env_cannot_name_arbitrary_secrets(provider: OpenAIServer) -> None:
    handler = get_handler("call_llm_service")
    with pytest.raises(HandlerError, match="must name an environment variable ending in _API_KEY"):
        handler.run(make_ctx(), {"prompt": "x", "api_key_env": "SECRET_KEY"})
    assert provider.completions == []


def test_5xx_then_success_is_retried(provider: OpenAIServer) -> None:
    provider.fail_next(500)
    assert call({"prompt": "again"})["result"] == "summary of: again"
    assert len(provider.completions) == 2


def test_5xx_after_retries_is_retryable(provider: OpenAIServer) -> None:
    provider.fail_next(503, "The engine is currently overloaded.", count=2)
    with pytest.raises(HandlerError) as info:
        call({"prompt": "x", "retries": 1})
    assert info.value.retryable is True
    assert info.value.message.endswith("answered 503: The engine is currently overloaded.")


def test_429_retry_after_is_honoured(provider: OpenAIServer) -> None:
    provider.fail_next(429, "Rate limit reached", type="requests", headers={"Retry-After": "1"})
    started = time.monotonic()
    assert call({"prompt": "x"})["result"] == "summary of: x"
    assert time.monotonic() - started >= 1.0


def test_connection_refused_is_retryable(settings: Any) -> None:
    settings.TRELLIS_LLM_BASE_URL = refused_url("/v1")
    settings.TRELLIS_LLM_MODEL = "m"
    with pytest.raises(HandlerError) as info:
        call({"prompt": "x", "retries": 0})
    assert info.value.retryable is True


def test_egress_policy_applies(provider: OpenAIServer, settings: Any) -> None:
    settings.TRELLIS_EGRESS_ALLOW = []
    with pytest.raises(HandlerError, match="add it to TRELLIS_EGRESS_ALLOW"):
        call({"prompt": "x"})
    assert provider.requests == []


def test_malformed_answer(json_server: JsonServer, settings: Any) -> None:
    json_server.route("POST", "/v1/chat/completions", json={"choices": []})
    settings.TRELLIS_LLM_BASE_URL = json_server.url("/v1")
    settings.TRELLIS_LLM_MODEL = "m"
    with pytest.raises(HandlerError, match="without choices"):
        call({"prompt": "x"})


def test_streaming_emits_tokens(provider: OpenAIServer) -> None:
    recorder = Recorder()
    out = call({"prompt": "stream me", "stream": True}, make_ctx(emit=recorder))
    assert out["result"] == "summary of: stream me"
    assert out["model"] == "gpt-test"
    assert "".join(recorder.tokens()) == out["result"]
    assert provider.completions[0].json()["stream"] is True
    assert provider.completions[0].headers["Accept"] == "text/event-stream"


def test_streaming_batches_small_deltas(settings: Any) -> None:
    answer = "word " * 30  # 150 characters in 3-character deltas, 10 ms apart: ~0.5 s
    with OpenAIServer(
        answer=lambda messages, payload: answer, chunk_size=3, stream_delay=0.01
    ) as server:
        settings.TRELLIS_LLM_BASE_URL = server.base_url
        settings.TRELLIS_LLM_MODEL = "m"
        recorder = Recorder()
        out = call({"prompt": "x", "stream": True}, make_ctx(emit=recorder))
    tokens = recorder.tokens()
    assert out["result"] == answer == "".join(tokens)
    assert 2 <= len(tokens) < 25  # 50 deltas arrived, batched into ~10 events
    gaps = [b - a for a, b in zip(recorder.times, recorder.times[1:], strict=False)]
    assert all(gap >= 0.03 for gap in gaps[:-1])


def test_streaming_long_deltas_are_emitted_by_size(settings: Any) -> None:
    answer = "x" * 1000
    with OpenAIServer(answer=lambda messages, payload: answer, chunk_size=250) as server:
        settings.TRELLIS_LLM_BASE_URL = server.base_url
        settings.TRELLIS_LLM_MODEL = "m"
        recorder = Recorder()
        out = call({"prompt": "x", "stream": True}, make_ctx(emit=recorder))
    assert out["result"] == answer
    assert [len(t) for t in recorder.tokens()] == [250, 250, 250, 250]


def test_streaming_error_before_the_stream(provider: OpenAIServer) -> None:
    provider.fail_next(400, "Invalid 'messages'", type="invalid_request_error")
    with pytest.raises(HandlerError, match="answered 400: Invalid 'messages'"):
        call({"prompt": "x", "stream": True}, make_ctx(emit=Recorder()))


def test_streaming_error_event(json_server: JsonServer, settings: Any) -> None:
    events = [
        'data: {"choices": [{"index": 0, "delta": {"content": "par"}}]}\n\n',
        'data: {"error": {"message": "overloaded mid-stream"}}\n\n',
    ]
    json_server.route("POST", "/v1/chat/completions", responses=[Reply(200, stream=events)])
    settings.TRELLIS_LLM_BASE_URL = json_server.url("/v1")
    settings.TRELLIS_LLM_MODEL = "m"
    with pytest.raises(HandlerError) as info:
        call({"prompt": "x", "stream": True})
    assert "overloaded mid-stream" in info.value.message and info.value.retryable is True


def test_streaming_reads_usage_and_multiline_events(json_server: JsonServer, settings: Any) -> None:
    events = [
        ": keep-alive\n\n",
        'data: {"model": "real-model", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n',
        'data: {"choices": [{"index": 0,\ndata: "delta": {"content": "lo"}}]}\r\n\r\n',
        'data: {"choices": [], "usage": {"total_tokens": 3}}\n\n',
        "data: [DONE]\n\n",
    ]
    json_server.route("POST", "/v1/chat/completions", responses=[Reply(200, stream=events)])
    settings.TRELLIS_LLM_BASE_URL = json_server.url("/v1")
    settings.TRELLIS_LLM_MODEL = "m"
    out = call({"prompt": "x", "stream": True})
    assert out == {"result": "Hello", "model": "real-model", "usage": {"total_tokens": 3}}
