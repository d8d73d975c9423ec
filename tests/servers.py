"""Real HTTP servers on 127.0.0.1 for tests: a scriptable JSON API and an OpenAI look-alike.

Both run a stdlib ``ThreadingHTTPServer`` on a free port in a daemon thread, record every
request they receive, and work as context managers or through the pytest fixtures
``json_server`` and ``openai_server`` defined at the end of this module::

    with JsonServer() as server:
        server.route("GET", "/posts", json=[{"id": 1}])
        server.route("GET", "/flaky", responses=[(503, {"error": "busy"}), (200, {"ok": True})])
        server.route("GET", "/limited", responses=[Reply(429, headers={"Retry-After": "1"}),
                                                   Reply(200, json={"ok": True})])
        server.redirect("GET", "/old", "/posts")
        server.route("GET", "/slow", json={}, delay=2.0)
        requests.get(server.url("/posts"))
        assert server.requests[0].path == "/posts"

    with OpenAIServer(api_key="sk-test") as llm:   # llm.base_url == "http://127.0.0.1:N/v1"
        llm.fail_next(500)                          # next chat completion answers 500 once
        ...                                         # answer: "summary of: <last user message>"

The handlers refuse loopback addresses unless ``TRELLIS_EGRESS_ALLOW`` lets them through: use
the ``local_egress`` fixture (or set it to ``["127.0.0.1"]`` yourself).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from requests.structures import CaseInsensitiveDict


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass
class RecordedRequest:
    """A request as the server received it."""

    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict[str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What to answer. ``json`` wins over ``body``; ``stream`` sends chunked pieces instead."""

    status: int = 200
    json: Any = MISSING
    body: str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    stream: list[str | bytes] | None = None  # chunked transfer, one HTTP chunk per piece
    stream_delay: float = 0.0  # seconds between stream pieces


ReplySpec = Reply | int | tuple[Any, ...]


def as_reply(spec: ReplySpec) -> Reply:
    """``Reply`` | status | (status, json) | (status, json, headers) → ``Reply``."""
    if isinstance(spec, Reply):
        return spec
    if isinstance(spec, int):
        return Reply(spec)
    status, *rest = spec
    payload = rest[0] if rest else MISSING
    headers = dict(rest[1]) if len(rest) > 1 else {}
    return Reply(int(status), json=payload, headers=headers)


def unused_port() -> int:
    """A port nothing listens on (right now) on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused_url(path: str = "/") -> str:
    """A URL whose connection is refused."""
    return f"http://127.0.0.1:{unused_port()}{path}"


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: LocalServer  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=CaseInsensitiveDict(dict(self.headers.items())),
            body=body,
        )
        self.owner._record(request)
        try:
            reply = as_reply(self.owner.respond(request))
        except Exception as exc:  # a broken test handler: say so instead of hanging up
            reply = Reply(500, json={"error": f"test server: {type(exc).__name__}: {exc}"})
        self.close_connection = True
        try:
            self._write(reply)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # the client gave up (timeouts, size limits): fine

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _write(self, reply: Reply) -> None:
        if reply.delay and self.owner._stopping.wait(reply.delay):
            return
        headers = dict(reply.headers)
        lowered = {k.lower() for k in headers}
        if reply.stream is not None:
            self.send_response(reply.status)
            if "content-type" not in lowered:
                self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.flush()
            for piece in reply.stream:
                if reply.stream_delay and self.owner._stopping.wait(reply.stream_delay):
                    return
                data = piece.encode() if isinstance(piece, str) else piece
                if data:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        if reply.json is not MISSING:
            payload = json.dumps(reply.json).encode()
            content_type = "application/json"
        elif isinstance(reply.body, str):
            payload, content_type = reply.body.encode(), "text/plain; charset=utf-8"
        elif isinstance(reply.body, bytes):
            payload, content_type = reply.body, "application/octet-stream"
        else:
            payload, content_type = b"", ""
        self.send_response(reply.status)
        if content_type and "content-type" not in lowered:
            self.send_header("Content-Type", content_type)
        if "content-length" not in lowered:
            self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a request stuck in a long delay

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up early is expected in these tests


class LocalServer:
    """Base class: a threaded HTTP server on 127.0.0.1 recording requests."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalServer:
        handler = type("Handler", (_RequestHandler,), {"owner": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # addresses -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.origin + (path if path.startswith("/") else "/" + path)

    # requests ------------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path == path and (method is None or r.method == method.upper())
            ]

    def respond(self, request: RecordedRequest) -> ReplySpec:  # pragma: no cover - abstract
        raise NotImplementedError


class _Route:
    def __init__(
        self,
        replies: list[Reply] | None,
        handler: Callable[[RecordedRequest], ReplySpec] | None,
    ) -> None:
        self.replies = replies or []
        self.handler = handler
        self.calls = 0

    def next(self, request: RecordedRequest) -> ReplySpec:
        self.calls += 1
        if self.handler is not None:
            return self.handler(request)
        return self.replies[min(self.calls, len(self.replies)) - 1]


class JsonServer(LocalServer):
    """A JSON API whose routes each test scripts.

    ``route(method, path, ...)`` answers ``method path`` (``"*"`` for any method) with
    ``status`` and ``json`` / ``body`` / ``headers`` after ``delay`` seconds; or with the
    ``responses`` in turn (the last one repeats), each a ``Reply``, a status, ``(status,
    json)`` or ``(status, json, headers)``; or with what ``handler(request)`` returns.
    Unrouted paths answer 404.
    """

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[tuple[str, str], _Route] = {}
        self.base_url = ""

    def start(self) -> JsonServer:
        super().start()
        self.base_url = self.origin
        return self

    def route(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json: Any = MISSING,  # noqa: A002 - mirrors requests' keyword
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        responses: Iterable[ReplySpec] | None = None,
        handler: Callable[[RecordedRequest], ReplySpec] | None = None,
    ) -> str:
        """Script ``method path``; returns the route's full URL."""
        if responses is not None:
            replies = [as_reply(r) for r in responses]
            if not replies:
                raise ValueError("responses must not be empty")
            for reply in replies:
                reply.delay = reply.delay or delay
        else:
            replies = [
                Reply(status, json=json, body=body, headers=dict(headers or {}), delay=delay)
            ]
        with self._lock:
            self._routes[(method.upper(), path)] = _Route(replies, handler)
        return self.url(path)

    def redirect(self, method: str, path: str, location: str, status: int = 302) -> str:
        """Answer ``method path`` with a redirect to ``location``; returns the route's URL."""
        return self.route(method, path, status=status, headers={"Location": location})

    def calls(self, method: str, path: str) -> int:
        """How many times the route was answered."""
        route = self._routes.get((method.upper(), path))
        return route.calls if route else 0

    def respond(self, request: RecordedRequest) -> ReplySpec:
        with self._lock:
            route = self._routes.get((request.method, request.path)) or self._routes.get(
                ("*", request.path)
            )
            if route is None:
                return Reply(404, json={"error": f"no route for {request.method} {request.path}"})
            return route.next(request)


def default_answer(messages: list[dict[str, Any]], payload: dict[str, Any]) -> str:
    """``"summary of: " + <the last user message>``."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return "summary of: " + str(message.get("content", ""))
    return "summary of: (nothing)"


def openai_error(
    status: int,
    message: str,
    type: str = "server_error",
    code: str | None = None,  # noqa: A002
) -> Reply:
    """An OpenAI-style error reply."""
    return Reply(
        status, json={"error": {"message": message, "type": type, "param": None, "code": code}}
    )


class OpenAIServer(LocalServer):
    """An OpenAI-compatible ``POST /v1/chat/completions`` (plus ``GET /v1/models``).

    The answer is ``answer(messages, request_json)`` (default :func:`default_answer`:
    ``"summary of: <last user message>"``). ``model`` is reported back as the request's model
    (``"<model>"``, or ``default_model`` when the request names none). With ``api_key`` set,
    requests without ``Authorization: Bearer <api_key>`` get OpenAI's 401. Streaming requests
    get server-sent events: a role chunk, the answer in ``chunk_size``-character deltas
    ``stream_delay`` seconds apart, a finish chunk, a usage chunk when
    ``stream_options.include_usage`` is set, then ``data: [DONE]``.
    """

    def __init__(
        self,
        *,
        answer: Callable[[list[dict[str, Any]], dict[str, Any]], str] = default_answer,
        api_key: str | None = None,
        default_model: str = "test-model",
        chunk_size: int = 4,
        stream_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.answer = answer
        self.api_key = api_key
        self.default_model = default_model
        self.chunk_size = chunk_size
        self.stream_delay = stream_delay
        self._failures: list[Reply] = []
        self.base_url = ""

    def start(self) -> OpenAIServer:
        super().start()
        self.base_url = self.origin + "/v1"
        return self

    def fail_next(
        self,
        status: int = 500,
        message: str = "The server had an error while processing your request.",
        *,
        count: int = 1,
        type: str = "server_error",  # noqa: A002 - OpenAI's field name
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` chat completions with an OpenAI-style error."""
        for _ in range(count):
            reply = openai_error(status, message, type)
            reply.headers.update(headers or {})
            with self._lock:
                self._failures.append(reply)

    @property
    def completions(self) -> list[RecordedRequest]:
        """The chat completion requests received."""
        return self.requests_to("/v1/chat/completions", "POST")

    def respond(self, request: RecordedRequest) -> ReplySpec:
        if request.method == "GET" and request.path == "/v1/models":
            return Reply(200, json={"object": "list", "data": [{"id": self.default_model}]})
        if request.path != "/v1/chat/completions":
            return openai_error(
                404,
                f"Unknown request URL: {request.method} {request.path}",
                "invalid_request_error",
            )
        if request.method != "POST":
            return openai_error(405, "Method not allowed", "invalid_request_error")
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return failure
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return openai_error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        try:
            payload = request.json()
        except ValueError:
            return openai_error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        messages = payload.get("messages") if isinstance(payload, dict) else None
        if not isinstance(messages, list) or not messages:
            return openai_error(400, "'messages' is a required property", "invalid_request_error")
        model = str(payload.get("model") or self.default_model)
        text = self.answer(messages, payload)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt_tokens + len(text.split()),
        }
        ident = "chatcmpl-" + uuid.uuid4().hex[:12]
        created = int(time.time())
        if not payload.get("stream"):
            return Reply(
                200,
                json={
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            event = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(event)}\n\n"

        size = max(1, self.chunk_size)
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": text[i : i + size]}) for i in range(0, len(text), size)]
        events.append(chunk({}, "stop"))
        if (payload.get("stream_options") or {}).get("include_usage"):
            usage_event = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            events.append(f"data: {json.dumps(usage_event)}\n\n")
        events.append("data: [DONE]\n\n")
        return Reply(
            200,
            stream=list(events),
            stream_delay=self.stream_delay,
            headers={"Cache-Control": "no-cache"},
        )


# pytest fixtures -----------------------------------------------------------------------------


@pytest.fixture
def json_server() -> Iterator[JsonServer]:
    """A started :class:`JsonServer`, stopped after the test."""
    with JsonServer() as server:
        yield server


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A started :class:`OpenAIServer` (no API key required), stopped after the test."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def local_egress(settings: Any) -> None:
    """Let handlers reach 127.0.0.1 (``TRELLIS_EGRESS_ALLOW = ["127.0.0.1"]``)."""
    settings.TRELLIS_EGRESS_ALLOW = ["127.0.0.1"]
