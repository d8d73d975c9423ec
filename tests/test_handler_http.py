"""``call_external_service`` and the egress policy, against real local HTTP servers."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from handlers.egress import check_url
from handlers.http import MAX_RESPONSE_BYTES
from handlers.registry import Context, HandlerError, get_handler
from tests.handler_helpers import make_ctx, run_handler
from tests.servers import JsonServer, Reply, refused_url

# json_server, openai_server and local_egress come from tests/servers.py via conftest.py
pytestmark = pytest.mark.usefixtures("local_egress")


def call(config: dict[str, Any], ctx: Context | None = None) -> Any:
    return run_handler("call_external_service", config, ctx)


def test_get_json(json_server: JsonServer) -> None:
    url = json_server.route(
        "GET", "/posts", json=[{"id": 1, "title": "hello"}], headers={"X-Total": "1"}
    )
    out = call({"url": url, "params": {"page": 2, "tag": ["a", "b"]}, "headers": {"X-Token": "t"}})
    assert out["status"] == 200
    assert out["data"] == [{"id": 1, "title": "hello"}]
    assert out["headers"]["content-type"] == "application/json"
    assert out["headers"]["x-total"] == "1"
    (request,) = json_server.requests
    assert request.method == "GET"
    assert request.query == {"page": ["2"], "tag": ["a", "b"]}
    assert request.headers["X-Token"] == "t"


def test_post_json_body(json_server: JsonServer) -> None:
    url = json_server.route("POST", "/items", status=201, json={"id": 7})
    out = call({"url": url, "method": "POST", "json": {"name": "x", "tags": [1, 2]}})
    assert out == {"data": {"id": 7}, "status": 201, "headers": out["headers"]}
    (request,) = json_server.requests
    assert request.json() == {"name": "x", "tags": [1, 2]}
    assert request.headers["Content-Type"] == "application/json"


def test_text_body_and_text_answer(json_server: JsonServer) -> None:
    url = json_server.route("PUT", "/note", body="stored, thanks")
    out = call(
        {
            "url": url,
            "method": "PUT",
            "body": "some text",
            "headers": {"Content-Type": "text/plain"},
        }
    )
    assert out["data"] == "stored, thanks"
    assert json_server.requests[0].text == "some text"


def test_json_without_json_content_type_is_parsed(json_server: JsonServer) -> None:
    url = json_server.route("GET", "/plain", body='{"a": 1}')
    assert call({"url": url})["data"] == {"a": 1}


def test_head_request(json_server: JsonServer) -> None:
    url = json_server.route("HEAD", "/thing", json={"ignored": True})
    out = call({"url": url, "method": "HEAD"})
    assert out["status"] == 200


def test_5xx_then_success_is_retried(json_server: JsonServer) -> None:
    url = json_server.route(
        "GET", "/flaky", responses=[(503, {"e": 1}), (500, {"e": 2}), (200, {"ok": True})]
    )
    events: list[tuple[str, Any]] = []
    out = call({"url": url}, make_ctx(emit=lambda kind, data: events.append((kind, data))))
    assert out["data"] == {"ok": True}
    assert json_server.calls("GET", "/flaky") == 3
    assert [kind for kind, _ in events] == ["node.log", "node.log"]


def test_5xx_after_retries_is_a_retryable_failure(json_server: JsonServer) -> None:
    url = json_server.route("GET", "/down", status=502, body="bad gateway")
    with pytest.raises(HandlerError) as info:
        call({"url": url, "retries": 1})
    assert info.value.retryable is True
    assert info.value.message == f"GET {url} answered 502: bad gateway"
    assert json_server.calls("GET", "/down") == 2


def test_429_retry_after_is_honoured(json_server: JsonServer) -> None:
    url = json_server.route(
        "GET",
        "/limited",
        responses=[
            Reply(429, json={"e": "slow down"}, headers={"Retry-After": "1"}),
            (200, {"ok": True}),
        ],
    )
    started = time.monotonic()
    out = call({"url": url})
    assert time.monotonic() - started >= 1.0
    assert out["data"] == {"ok": True}
    first, second = json_server.requests
    assert second.received_at - first.received_at >= 1.0


def test_retry_after_beyond_the_deadline_gives_up(json_server: JsonServer) -> None:
    url = json_server.route(
        "GET", "/limited", status=429, json={"e": "later"}, headers={"Retry-After": "20"}
    )
    started = time.monotonic()
    with pytest.raises(HandlerError) as info:
        call({"url": url}, make_ctx(deadline=time.time() + 2))
    assert time.monotonic() - started < 1.5
    assert info.value.retryable is True
    assert "answered 429" in info.value.message


def test_404_is_not_retryable(json_server: JsonServer) -> None:
    url = json_server.url("/missing")
    with pytest.raises(HandlerError) as info:
        call({"url": url})
    assert info.value.retryable is False
    assert info.value.message.startswith(f"GET {url} answered 404: ")
    assert "no route for GET /missing" in info.value.message
    assert json_server.calls("GET", "/missing") == 0 and len(json_server.requests) == 1


def test_long_error_bodies_are_cut_to_200_characters(json_server: JsonServer) -> None:
    url = json_server.route("GET", "/bad", status=400, body="x" * 1000)
    with pytest.raises(HandlerError) as info:
        call({"url": url})
    assert info.value.message == f"GET {url} answered 400: " + "x" * 200


def test_expect_status(json_server: JsonServer) -> None:
    gone = json_server.route("GET", "/gone", status=404, json={"gone": True})
    assert call({"url": gone, "expect_status": [404]})["data"] == {"gone": True}
    ok = json_server.route("GET", "/ok", json={})
    with pytest.raises(HandlerError) as info:
        call({"url": ok, "expect_status": [201]})
    assert "answered 200 (expected [201])" in info.value.message
    assert info.value.retryable is False


def test_connection_refused_is_retryable() -> None:
    url = refused_url("/nothing")
    with pytest.raises(HandlerError) as info:
        call({"url": url, "retries": 1})
    assert info.value.retryable is True
    assert info.value.message.startswith(f"GET {url} failed after 2 attempts")


def test_timeout(json_server: JsonServer) -> None:
    url = json_server.route("GET", "/slow", json={}, delay=3)
    started = time.monotonic()
    with pytest.raises(HandlerError) as info:
        call({"url": url, "timeout": 0.3})
    assert time.monotonic() - started < 1.5
    assert info.value.retryable is True
    assert "timed out after 0.3s" in info.value.message


def test_node_deadline_caps_the_timeout(json_server: JsonServer) -> None:
    url = json_server.route("GET", "/slow", json={}, delay=3)
    started = time.monotonic()
    with pytest.raises(HandlerError) as info:
        call({"url": url, "timeout": 30}, make_ctx(deadline=time.time() + 0.3))
    assert time.monotonic() - started < 1.5
    assert "timed out" in info.value.message


def test_redirects_are_followed(json_server: JsonServer) -> None:
    json_server.route("GET", "/posts", json=["p"])
    url = json_server.redirect("GET", "/old", "/posts", status=301)
    out = call({"url": url, "headers": {"Authorization": "Bearer t"}})
    assert out["data"] == ["p"]
    assert [r.path for r in json_server.requests] == ["/old", "/posts"]
    assert json_server.requests[1].headers["Authorization"] == "Bearer t"


def test_303_after_post_becomes_get(json_server: JsonServer) -> None:
    json_server.route("GET", "/result", json={"done": True})
    url = json_server.redirect("POST", "/submit", "/result", status=303)
    assert call({"url": url, "method": "POST", "json": {"a": 1}})["data"] == {"done": True}
    assert [(r.method, r.body) for r in json_server.requests][1] == ("GET", b"")


def test_cross_origin_redirect_drops_credentials(json_server: JsonServer) -> None:
    with JsonServer() as other:
        target = other.route("GET", "/there", json={"ok": True})
        url = json_server.redirect("GET", "/here", target)
        out = call({"url": url, "headers": {"Authorization": "Bearer secret", "X-Keep": "1"}})
    assert out["data"] == {"ok": True}
    (request,) = other.requests
    assert "Authorization" not in request.headers
    assert request.headers["X-Keep"] == "1"


def test_too_many_redirects(json_server: JsonServer) -> None:
    url = json_server.redirect("GET", "/loop", "/loop")
    with pytest.raises(HandlerError) as info:
        call({"url": url})
    assert "more than 5 redirects" in info.value.message
    assert info.value.retryable is False
    assert len(json_server.requests) == 6


def test_redirect_to_a_private_address_is_refused(json_server: JsonServer) -> None:
    url = json_server.redirect("GET", "/steal", "http://169.254.169.254/latest/meta-data/")
    with pytest.raises(HandlerError) as info:
        call({"url": url})
    assert info.value.retryable is False
    assert "169.254.169.254 is a private/loopback/link-local address" in info.value.message
    assert "TRELLIS_EGRESS_ALLOW" in info.value.message
    assert len(json_server.requests) == 1


def test_loopback_is_refused_unless_allowed(json_server: JsonServer, settings: Any) -> None:
    url = json_server.route("GET", "/x", json={})
    settings.TRELLIS_EGRESS_ALLOW = []
    with pytest.raises(HandlerError) as info:
        call({"url": url})
    assert info.value.retryable is False
    assert info.value.message == (
        "127.0.0.1 is a private/loopback/link-local address; "
        "add it to TRELLIS_EGRESS_ALLOW to allow it"
    )
    assert json_server.requests == []
    settings.TRELLIS_EGRESS_ALLOW = ["127.0.0.0/8"]
    assert call({"url": url})["status"] == 200


def test_the_connection_itself_is_guarded_not_only_the_url_check(
    json_server: JsonServer, settings: Any
) -> None:
    """DNS rebinding: a name that passed ``check_url`` may resolve elsewhere a moment later.
    The transport resolves and checks again and connects only to what it approved, so a
    request that skips ``check_url`` entirely is still refused before any byte is sent."""
    from handlers.http import SESSION

    port = urlsplit(json_server.url()).port
    settings.TRELLIS_EGRESS_ALLOW = []
    for host in ("localhost", "127.0.0.1", "2130706433", "0x7f000001", "127.1"):
        with pytest.raises(HandlerError) as info:
            SESSION.get(f"http://{host}:{port}/x", timeout=5)
        assert "private/loopback/link-local" in info.value.message, host
    assert json_server.requests == []
    settings.TRELLIS_EGRESS_ALLOW = ["127.0.0.1"]
    url = json_server.route("GET", "/x", json={"ok": True})
    assert SESSION.get(url, timeout=5).json() == {"ok": True}
    assert len(json_server.requests) == 1


def test_body_over_10_mb_is_refused(json_server: JsonServer) -> None:
    big = json_server.route("GET", "/big", body=b"x" * (MAX_RESPONSE_BYTES + 1))
    with pytest.raises(HandlerError) as info:
        call({"url": big})
    assert "larger than 10 MB" in info.value.message and info.value.retryable is False
    # Without a Content-Length the body is counted while it streams in.
    chunk = b"y" * (1024 * 1024)
    streamed = json_server.route("GET", "/stream", responses=[Reply(200, stream=[chunk] * 11)])
    with pytest.raises(HandlerError) as info:
        call({"url": streamed})
    assert "larger than 10 MB" in info.value.message


def test_config_schema() -> None:
    schema = get_handler("call_external_service").config_schema
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for bad in (
        {},
        {"url": "http://x", "json": {}, "body": "b"},
        {"url": "http://x", "x": 1},
        {"url": "http://x", "method": "FETCH"},
        {"url": "http://x", "retries": 11},
    ):
        with pytest.raises(ValidationError):
            validator.validate(bad)


class TestCheckUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/",
            "http://192.168.0.1:8080/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]:8000/",
            "http://[::ffff:127.0.0.1]/",
            "http://224.0.0.1/",
            "http://localhost/",
        ],
    )
    def test_internal_addresses_are_refused(self, url: str, settings: Any) -> None:
        settings.TRELLIS_EGRESS_ALLOW = []
        with pytest.raises(HandlerError) as info:
            check_url(url)
        assert info.value.retryable is False
        assert "add it to TRELLIS_EGRESS_ALLOW" in info.value.message

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/"])
    def test_only_http_and_https(self, url: str) -> None:
        with pytest.raises(HandlerError, match="only http and https are allowed"):
            check_url(url)

    @pytest.mark.parametrize(
        ("allow", "url"),
        [
            (["127.0.0.1"], "http://127.0.0.1:9/"),
            (["127.0.0.1"], "http://localhost:9/"),  # resolves to an allowed address
            (["localhost"], "http://LOCALHOST/"),
            (["10.0.0.0/8"], "http://10.20.30.40/"),
            (["*.internal.test"], "http://llm.internal.test/"),
            ([".internal.test"], "http://internal.test/"),
            (["::1"], "http://[::1]/"),
        ],
    )
    def test_allow_list(self, allow: list[str], url: str, settings: Any) -> None:
        settings.TRELLIS_EGRESS_ALLOW = allow
        check_url(url)  # no error

    def test_public_addresses_pass(self, settings: Any) -> None:
        settings.TRELLIS_EGRESS_ALLOW = []
        check_url("https://93.184.215.14/")
        check_url("http://[2606:4700::1111]/")
