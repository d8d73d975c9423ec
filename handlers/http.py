"""The ``call_external_service`` handler and the HTTP plumbing ``call_llm_service`` shares.

:func:`send` is the one way handlers talk HTTP: it checks every URL (and every redirect
target) against the egress policy, follows at most five redirects itself, retries
connection errors, 5xx and 429 answers with exponential backoff (honouring ``Retry-After``
on 429/503), and keeps each attempt within the configured timeout and the node's deadline.
The :class:`Reply` it returns reads the body as a stream, refusing bodies over 10 MB.
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import json
import math
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3

from .egress import GuardedAdapter, check_url, static_refusal
from .registry import Context, Handler, HandlerError, register

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
BACKOFF_BASE = 0.2  # seconds before the first in-handler retry, doubled for each next one
BACKOFF_MAX = 5.0
RETRY_AFTER_MAX = 30.0
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_READ_CHUNK = 64 * 1024


def _new_session() -> requests.Session:
    session = requests.Session()
    # Connections go where the egress policy approved, and nowhere else: not through proxies
    # named in the environment either (a proxy would make the connection on our behalf).
    session.trust_env = False
    guarded = GuardedAdapter()
    session.mount("http://", guarded)
    session.mount("https://", guarded)
    # One session serves every run of the process: never carry cookies from one to another.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.headers["User-Agent"] = f"trellis {requests.utils.default_user_agent()}"
    return session


SESSION = _new_session()

_NO_JSON: Any = object()


def redact(url: str) -> str:
    """``url`` without user:password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def backoff(retry: int) -> float:
    """Seconds to wait before in-handler retry number ``retry`` (0-based)."""
    return min(BACKOFF_MAX, BACKOFF_BASE * 2.0**retry)


def retry_after(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or HTTP-date form), if any."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status == 429


def _pause(ctx: Context, seconds: float) -> None:
    """Sleep, waking up to notice a cancelled run."""
    end = time.monotonic() + seconds
    while True:
        if ctx.is_cancelled():
            raise HandlerError("cancelled while waiting to retry", retryable=False)
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))


def _fits_deadline(ctx: Context, wait: float) -> bool:
    remaining = ctx.remaining()
    return remaining is None or wait < remaining


def _content_type(headers: Any) -> str:
    return str(headers.get("Content-Type", "")).split(";", 1)[0].strip().lower()


def _charset(headers: Any) -> str:
    for param in str(headers.get("Content-Type", "")).split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return "utf-8"


@dataclass
class Reply:
    """A final (non-redirect) response whose body has not been read yet."""

    response: requests.Response
    method: str
    url: str
    read_deadline: float  # time.monotonic() after which reading the body times out
    timeout: float

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def describe(self) -> str:
        return f"{self.method} {redact(self.url)}"

    def headers(self) -> dict[str, str]:
        return {key.lower(): value for key, value in self.response.headers.items()}

    def content_type(self) -> str:
        return _content_type(self.response.headers)

    def iter_bytes(self, *, incremental: bool = False) -> Iterator[bytes]:
        """The body in chunks, at most ``MAX_RESPONSE_BYTES`` in all.

        ``incremental`` hands over data as soon as it arrives (for event streams) instead of
        in full 64 KiB chunks.
        """
        declared = self.response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
            self.close()
            raise self._too_large()
        total = 0
        raw = self.response.raw
        try:
            if incremental and hasattr(raw, "read1"):
                chunks: Iterator[bytes] = iter(
                    lambda: raw.read1(_READ_CHUNK, decode_content=True), b""
                )
            else:
                chunks = self.response.iter_content(_READ_CHUNK)
            for chunk in chunks:
                total += len(chunk)
                if total > MAX_RESPONSE_BYTES:
                    raise self._too_large()
                if time.monotonic() > self.read_deadline:
                    raise HandlerError(
                        f"{self.describe} timed out after {self.timeout:g}s reading the response",
                        retryable=True,
                    )
                yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            timed_out = isinstance(
                exc, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)
            ) or "timed out" in str(exc)
            what = f"timed out after {self.timeout:g}s" if timed_out else f"failed: {exc}"
            raise HandlerError(
                f"{self.describe} {what} while reading the response", retryable=True
            ) from exc
        finally:
            self.close()

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())

    def text(self, body: bytes | None = None) -> str:
        data = self.read() if body is None else body
        try:
            return data.decode(_charset(self.response.headers), errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        self.response.close()

    def _too_large(self) -> HandlerError:
        return HandlerError(
            f"{self.describe} answered with a body larger than {MAX_RESPONSE_BYTES // 2**20} MB",
            retryable=False,
        )


def _request_once(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    params: dict[str, Any] | None,
    data: bytes | None,
    timeout: float,
) -> Reply:
    """One attempt: the request and the redirects it leads to, each URL checked first."""
    deadline = time.monotonic() + timeout
    headers = dict(headers)
    for hop in range(MAX_REDIRECTS + 1):
        check_url(url)
        left = max(0.001, deadline - time.monotonic())
        response = SESSION.request(
            method,
            url,
            headers=headers,
            params=params if hop == 0 else None,
            data=data,
            timeout=left,
            allow_redirects=False,
            stream=True,
        )
        location = response.headers.get("Location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return Reply(response, method, response.url or url, deadline, timeout)
        response.close()
        if hop == MAX_REDIRECTS:
            raise HandlerError(
                f"{method} {redact(url)}: more than {MAX_REDIRECTS} redirects", retryable=False
            )
        target = urljoin(response.url or url, location)
        status = response.status_code
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, data = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if _origin(target) != _origin(url):
            # Credentials are for the host they were given for.
            headers = {
                k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")
            }
        url = target
    raise AssertionError("unreachable")  # pragma: no cover


def send(
    ctx: Context,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    json_body: Any = _NO_JSON,
    data: str | bytes | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    accept: Collection[int] = (),
) -> Reply:
    """Make an HTTP request the way handlers must (egress check, redirects, retries).

    Returns the final response with its body unread, whatever its status: after ``retries``
    in-handler retries a 5xx/429 answer is returned as is. Statuses in ``accept`` are never
    retried. Raises ``HandlerError`` for connection failures (retryable), timeouts
    (retryable), refused URLs and too many redirects (not retryable).
    """
    method = method.upper()
    headers = {str(k): str(v) for k, v in (headers or {}).items()}
    body: bytes | None = data.encode() if isinstance(data, str) else data
    if json_body is not _NO_JSON:
        body = json.dumps(json_body, ensure_ascii=False).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    describe = f"{method} {redact(url)}"
    retry = 0
    while True:
        remaining = ctx.remaining()
        if remaining is not None and remaining <= 0:
            raise HandlerError(f"{describe}: the node's deadline has passed", retryable=True)
        attempt_timeout = timeout if remaining is None else min(timeout, remaining)
        try:
            reply = _request_once(
                method, url, headers=headers, params=params, data=body, timeout=attempt_timeout
            )
        except requests.exceptions.SSLError as exc:
            raise HandlerError(f"{describe} failed: TLS error: {exc}", retryable=False) from exc
        except requests.ConnectionError as exc:  # includes connect timeouts
            wait = backoff(retry)
            if retry < retries and _fits_deadline(ctx, wait):
                _pause(ctx, wait)
                retry += 1
                continue
            tries = "1 attempt" if retry == 0 else f"{retry + 1} attempts"
            raise HandlerError(
                f"{describe} failed after {tries}: {_reason(exc)}", retryable=True
            ) from exc
        except requests.Timeout as exc:
            raise HandlerError(
                f"{describe} timed out after {attempt_timeout:g}s", retryable=True
            ) from exc
        except requests.RequestException as exc:
            raise HandlerError(f"{describe} failed: {exc}", retryable=False) from exc

        status = reply.status
        if status in accept or not is_retryable_status(status) or retry >= retries:
            return reply
        hinted = retry_after(reply.response) if status in (429, 503) else None
        wait = backoff(retry) if hinted is None else min(hinted, RETRY_AFTER_MAX)
        if not _fits_deadline(ctx, wait):
            return reply
        reply.close()
        ctx.log(f"{describe} answered {status}; retrying in {wait:.1f}s")
        _pause(ctx, wait)
        retry += 1


def _reason(exc: BaseException) -> str:
    """The useful end of a requests/urllib3 connection error ("[Errno 111] Connection refused")."""
    text = str(exc)
    start = text.rfind("[Errno")
    return text[start:].rstrip(")'\" ") if start != -1 else text


def error_excerpt(body: str, limit: int = 200) -> str:
    return body[:limit]


def parse_body(reply: Reply, body: bytes) -> Any:
    """JSON when the content type says so or the body parses as JSON, else text."""
    text = reply.text(body)
    if not text.strip():
        return None if "json" in reply.content_type() else text
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@register("call_external_service")
class CallExternalService(Handler):
    """Make an HTTP request and return the parsed answer.

    Output: ``{"data": parsed JSON or text, "status": code, "headers": {lowercased: value}}``.
    Connection errors, 5xx and 429 answers are retried in the handler (``retries`` times, with
    exponential backoff, honouring ``Retry-After``); a final non-2xx answer (or one not in
    ``expect_status``) fails the node, retryably for 5xx/429. URLs must pass the egress policy
    (no private or loopback addresses unless allowed by ``TRELLIS_EGRESS_ALLOW``).
    """

    description = "HTTP request (JSON or text answer) with retries on 5xx/429/connection errors."
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {
                "type": "string",
                "minLength": 1,
                "description": "http(s) URL to call.",
            },
            "method": {
                "type": "string",
                "enum": list(METHODS),
                "default": "GET",
                "description": "HTTP method.",
            },
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Request headers.",
            },
            "params": {
                "type": "object",
                "additionalProperties": {
                    "type": ["string", "number", "boolean", "array"],
                    "items": {"type": ["string", "number", "boolean"]},
                },
                "description": "Query string parameters (a list value repeats the parameter).",
            },
            "json": {"description": "Request body, sent as JSON (any JSON value)."},
            "body": {"type": "string", "description": "Raw request body (text)."},
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 30,
                "description": "Seconds allowed per attempt (also capped by the node deadline).",
            },
            "retries": {
                "type": "integer",
                "minimum": 0,
                "maximum": 10,
                "default": 3,
                "description": "In-handler retries on connection errors, 5xx and 429 answers.",
            },
            "expect_status": {
                "type": "array",
                "items": {"type": "integer", "minimum": 100, "maximum": 599},
                "minItems": 1,
                "description": "Statuses that count as success (default: any 2xx).",
            },
        },
        "not": {"required": ["json", "body"]},
    }

    def check_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        problem = static_refusal(config.get("url"))
        return [("url", problem)] if problem else []

    def run(self, ctx: Context, config: dict[str, Any]) -> Any:
        method = str(config.get("method") or "GET").upper()
        url = str(config["url"])
        expect = config.get("expect_status")
        accept = frozenset(int(s) for s in expect) if expect else frozenset()
        reply = send(
            ctx,
            method,
            url,
            headers=config.get("headers"),
            params=config.get("params"),
            json_body=config["json"] if "json" in config else _NO_JSON,
            data=config.get("body"),
            timeout=float(config.get("timeout") or 30),
            retries=int(config.get("retries", 3)),
            accept=accept,
        )
        body = reply.read()
        success = reply.status in accept if accept else reply.ok
        if not success:
            text = reply.text(body)
            expected = f" (expected {sorted(accept)})" if accept else ""
            raise HandlerError(
                f"{reply.describe} answered {reply.status}{expected}: {error_excerpt(text)}",
                retryable=is_retryable_status(reply.status),
                data={"status": reply.status, "body": error_excerpt(text, 2000)},
            )
        return {"data": parse_body(reply, body), "status": reply.status, "headers": reply.headers()}
