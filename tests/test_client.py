"""The Python client (trellis_client): the error mapping, the typed results, paging, profiles
and the SSE follower's memory without a server; then Client and AsyncClient against a real
daphne and worker, a dropped stream included."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from rest_framework.authtoken.models import Token

from runs.authoring import Workflow
from tests.client_helpers import (
    StreamCuttingProxy,
    cyclic_spec,
    steps_spec,
    user_env,
    waiting_spec,
)
from tests.conftest import wait_for_run, wait_node
from tests.servers import refused_url
from tests.specs import py, spec, unique_name
from trellis_client import (
    ApiError,
    AsyncClient,
    AuthError,
    Client,
    ConfigError,
    Conflict,
    ConnectionFailed,
    NotFound,
    Run,
    ValidationFailed,
    calls,
    config,
)
from trellis_client.errors import ErrorDetail, error_for

transactional = pytest.mark.django_db(transaction=True)

# --------------------------------------------------------------------------------------
# Without a server


@pytest.mark.unit
def test_the_client_imports_without_django_or_the_server_packages(tmp_path):
    env = user_env(None, None, tmp_path)
    code = (
        "import sys, trellis_client, trellis_client.cli\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'rest_framework', 'celery', 'runs', 'handlers', 'frontend', 'orchestration'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, text=True,
                         capture_output=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"


@pytest.mark.unit
def test_error_answers_become_exceptions_by_status():
    body = {"error": "2 problems found", "errors": [{"path": "$.a", "message": "bad"}]}
    invalid = error_for(400, body)
    assert isinstance(invalid, ValidationFailed) and invalid.status == 400
    assert invalid.message == "2 problems found" and invalid.errors == [ErrorDetail("$.a", "bad")]
    assert type(error_for(401, {"error": "Invalid token."})) is AuthError
    assert type(error_for(403, {"error": "not yours"})) is AuthError
    assert type(error_for(404, {"error": "Not found."})) is NotFound
    conflict = error_for(409, {"error": "cannot move run", "errors": [], "current": "COMPLETED"})
    assert isinstance(conflict, Conflict) and conflict.current == "COMPLETED"
    other = error_for(502, None, "<html>Bad   gateway</html>")
    assert (
        type(other) is ApiError
        and other.message == "the server answered HTTP 502: <html>Bad gateway</html>"
    )
    assert str(other) == "the server answered HTTP 502: <html>Bad gateway</html> (HTTP 502)"


@pytest.mark.unit
def test_results_are_typed_and_keep_the_raw_answer():
    raw = {
        "id": "r1", "workflow": "w", "version": 2, "status": "COMPLETED", "new_field": 1,
        "created_at": "2026-11-30T10:00:00+00:00",
        "nodes": [{"id": "a", "state": "COMPLETED", "attempt": 1,
                   "started_at": "2026-11-30T10:00:01+00:00",
                   "finished_at": "2026-11-30T10:00:03.5+00:00"}],
    }  # fmt: skip
    run = Run.from_dict(raw)
    assert run.raw is raw and run.finished and run.version == 2
    assert run.created_at == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert run.nodes[0].id == "a" and run.nodes[0].duration == 2.5


@pytest.mark.unit
def test_cursor_pages_are_followed_and_cut_at_the_limit():
    call = calls.list_runs(status="RUNNING", limit=3)
    assert call.params == {"status": "RUNNING", "limit": 3}
    page = {"next": "http://elsewhere/api/v1/runs/?cursor=abc&limit=3", "results": [{"id": "1"}]}
    assert call.collect(page) is True and call.params["cursor"] == "abc"
    assert call.collect({"next": None, "results": [{"id": "2"}, {"id": "3"}, {"id": "4"}]}) is False
    assert [run.id for run in call.result()] == ["1", "2", "3"]
    history = calls.events("r", after=5)
    full = {"results": [{"id": i, "kind": "node.log"} for i in range(6, 6 + calls.EVENT_PAGE)]}
    assert history.collect(full) is True and history.params["after"] == 5 + calls.EVENT_PAGE
    assert history.collect({"results": []}) is False and len(history.result()) == calls.EVENT_PAGE


@pytest.mark.unit
def test_a_spec_is_sent_as_json_or_as_yaml_text(tmp_path):
    class PythonWorkflow:
        def to_spec(self):
            return {"name": "py"}

    assert calls.spec_body({"name": "d"}) == {"json": {"name": "d"}}
    assert calls.spec_body(PythonWorkflow()) == {"json": {"name": "py"}}
    (tmp_path / "a.json").write_text('{"name": "j"}')
    (tmp_path / "b.yml").write_text("name: y\n")
    assert calls.spec_body(tmp_path / "a.json")["headers"] == {"Content-Type": "application/json"}
    yaml_body = calls.spec_body(tmp_path / "b.yml")
    assert yaml_body == {"content": b"name: y\n", "headers": {"Content-Type": "application/yaml"}}
    assert calls.spec_body("name: t")["content"] == b"name: t"
    with pytest.raises(TypeError):
        calls.spec_body(42)


@pytest.mark.unit
def test_the_follower_skips_repeats_resumes_after_the_last_id_and_gives_up(tmp_path):
    state = calls.FollowState("http://x", "r", after=4, max_retries=2, first_delay=0.1)
    assert state.request(5)["headers"] == {"Last-Event-ID": "4"}
    assert state.accept("", "") is None  # retry: advice
    first = state.accept("5", json.dumps({"id": 5, "kind": "node.log", "data": {}}))
    assert first.id == 5 and state.accept("5", json.dumps({"id": 5, "kind": "node.log"})) is None
    assert state.request(5)["headers"] == {"Last-Event-ID": "5"} and not state.ended()
    state.accept("6", json.dumps({"id": 6, "kind": "run.result", "data": {"status": "FAILED"}}))
    assert state.ended()
    drop = httpx.RemoteProtocolError("peer closed connection")
    assert [state.dropped(drop), state.dropped(drop)] == [0.1, 0.2]
    with pytest.raises(ConnectionFailed, match="peer closed connection"):
        state.dropped(drop)


@pytest.mark.unit
def test_profiles_are_private_and_explicit_values_win(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    path = config.save_profile("prod", "https://prod/", "p-token", environ=env)
    config.save_profile("dev", "http://dev", "d-token", environ=env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load(env)["default"] == "prod"  # the first saved
    assert config.resolve(environ=env) == config.Target("https://prod", "p-token")
    with_vars = {**env, "TRELLIS_URL": "http://env", "TRELLIS_TOKEN": "e"}
    assert config.resolve(environ=with_vars) == config.Target("http://env", "e")
    assert config.resolve(profile="dev", environ=with_vars) == config.Target(
        "http://dev", "d-token"
    )
    assert config.resolve("http://flag", environ=with_vars).url == "http://flag"
    with pytest.raises(ConfigError, match="no profile named 'qa'"):
        config.resolve(profile="qa", environ=env)
    with pytest.raises(ConfigError, match="no Trellis server URL"):
        config.resolve(environ={"XDG_CONFIG_HOME": str(tmp_path / "empty")})


@pytest.mark.unit
def test_an_unreachable_server_is_connection_failed():
    url = refused_url("")
    with Client(url, "t") as client, pytest.raises(ConnectionFailed) as failure:
        client.list_runs()
    assert failure.value.url == url and "cannot reach the Trellis server" in str(failure.value)


# --------------------------------------------------------------------------------------
# Against the server


@pytest.fixture
def token(user):
    return Token.objects.create(user=user).key


@pytest.fixture
def client(web_server, token):
    with Client(web_server, token) as client:
        yield client


@transactional
def test_workflows_push_list_get_and_validate(client, python_workflows):
    name = unique_name("cl")
    first = client.push_workflow(steps_spec(name))
    assert (first.name, first.version, first.created) == (name, 1, True)
    written = Workflow(unique_name("py"))
    written.node("shout", "output", value="hi")
    assert client.push_workflow(written).created
    second = client.push_workflow(json.dumps(steps_spec(name, seconds=0.1)))  # text
    assert second.version == 2
    assert {name, written.name} <= {w.name for w in client.list_workflows()}
    latest = client.get_workflow(name)
    assert latest.latest_version == 2 and latest.spec["dag"]["nodes"][1]["id"] == "second"
    assert [v.version for v in client.list_versions(name)] == [2, 1]
    assert client.get_workflow(name, version=1).spec["dag"]["nodes"][1]["config"]["kwargs"] == {
        "seconds": 0.3
    }
    plan = client.validate_workflow(steps_spec(name))
    assert plan.valid and plan.plan == [["first"], ["second"], ["third"]]
    cycle = client.validate_workflow(cyclic_spec(name))
    assert not cycle.valid and "cycle" in cycle.errors[0].message
    with pytest.raises(ValidationFailed) as refused:
        client.push_workflow(cyclic_spec(name))
    assert refused.value.errors[0].path == "$.dag.nodes[0].dependencies"


@transactional
def test_runs_sessions_workers_and_errors(worker, client, web_server):
    name = unique_name("cl")
    client.push_workflow(waiting_spec(name))
    session = client.create_session("s", {"n": 1})
    before = datetime.now(UTC) - timedelta(seconds=5)
    run = client.start_run(name, {"x": 1}, session=session.id, params={"p": 1})
    assert run.status in ("PENDING", "RUNNING") and run.inputs == {"x": 1}
    wait_node(run.id, "approve", {"WAITING"})
    listed = client.list_runs(workflow=name, session=session.id, created_after=before)
    assert [r.id for r in listed] == [run.id]
    assert client.list_runs(workflow=name, status="COMPLETED") == []
    assert client.send_event(run.id, "approve", {"ok": 1}) == {
        "node": "approve",
        "state": "COMPLETED",
    }
    unanswered = client.start_run(name, wait=True, timeout=1)  # 202 after a second: waiting
    assert unanswered.status == "RUNNING"
    assert client.cancel_run(unanswered.id).status == "CANCELLED"
    events = list(client.follow(run.id))
    assert events[-1].kind == "run.result" and client.run_results(run.id).result == {"ok": 1}
    assert [e.id for e in events] == [e.id for e in client.events(run.id)]
    assert client.events(run.id, after=events[-2].id)[0].id == events[-1].id

    patched = client.update_session(session.id, {"m": 2}, name="renamed")
    assert patched.state == {"n": 1, "m": 2} and patched.name == "renamed"
    assert client.get_session(session.id).revision == patched.revision
    assert session.id in {s.id for s in client.list_sessions()}
    assert any(w.liveness == "alive" for w in client.list_workers())

    with pytest.raises(Conflict) as conflict:
        client.pause_run(run.id)
    assert conflict.value.current == "COMPLETED" and conflict.value.status == 409
    with pytest.raises(NotFound):
        client.get_run("00000000-0000-0000-0000-000000000000")
    with pytest.raises(ValidationFailed) as unknown:
        client.start_run(unique_name("absent"))
    assert unknown.value.errors[0].path == "$.workflow"
    with Client(web_server, "wrong") as stranger, pytest.raises(AuthError) as denied:
        stranger.get_run(run.id)
    assert denied.value.status == 401 and denied.value.message == "Invalid token."


@transactional
def test_node_actions_clear_mark_and_skip(worker, client):
    name = unique_name("cl")
    nodes = [
        py("explode", "boom"),
        py("after", "echo", ["explode"], kwargs={"got": "{{ explode.output }}"}),
    ]
    client.push_workflow(spec(nodes, name=name))
    run = client.start_run(name)
    assert wait_for_run(run.id).status == "FAILED"

    skipped = client.skip_node(run.id, "explode")
    assert {node.id: node.state for node in skipped.nodes}["explode"] == "SKIPPED"
    assert wait_for_run(run.id).status == "COMPLETED"
    assert {n.id: n.state for n in client.get_run(run.id).nodes}["after"] == "SKIPPED"

    cleared = client.clear_node(run.id, "explode")
    assert cleared.status in ("RUNNING", "FAILED")  # boom may have failed again already
    assert wait_for_run(run.id).status == "FAILED"
    assert {n.id: n.attempt for n in client.get_run(run.id).nodes}["explode"] == 2

    client.mark_node(run.id, "explode", output={"v": 1})
    assert wait_for_run(run.id).status == "COMPLETED"
    after = {n.id: n for n in client.get_run(run.id).nodes}["after"]
    assert after.output == {"got": {"v": 1}}
    with pytest.raises(Conflict) as conflict:
        client.mark_node(run.id, "explode", "FAILED", reason="too late")
    assert conflict.value.current == "COMPLETED"
    with pytest.raises(NotFound):
        client.skip_node(run.id, "ghost")


@transactional
def test_follow_resumes_after_a_dropped_connection(worker, web_server, token):
    proxy = StreamCuttingProxy(web_server, cut_at=2)
    try:
        with Client(proxy.url, token) as client:
            client.push_workflow(steps_spec(name := unique_name("drop"), seconds=0.4))
            run = client.start_run(name)
            followed = [event.id for event in client.follow(run.id)]
            history = [event.id for event in client.events(run.id)]
    finally:
        proxy.close()
    assert proxy.cuts == 1 and proxy.streams >= 2
    assert followed == history and len(set(followed)) == len(followed)


@transactional
def test_the_async_client_starts_and_follows_a_run(worker, web_server, token):
    async def scenario():
        async with AsyncClient(web_server, token) as client:
            pushed = await client.push_workflow(steps_spec(unique_name("as"), seconds=0.1))
            run = await client.start_run(pushed.name)
            kinds = [event.kind async for event in client.follow(run.id)]
            return kinds, await client.get_run(run.id)

    kinds, run = asyncio.run(scenario())
    assert run.status == "COMPLETED" and [n.state for n in run.nodes] == ["COMPLETED"] * 3
    assert kinds[-1] == "run.result" and kinds.count("node.status") >= 9


@pytest.mark.unit
def test_client_reads_trellis_url_and_token_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("TRELLIS_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("TRELLIS_TOKEN", "k")
    with Client() as client:
        assert client.url == "http://127.0.0.1:9"
        assert client.http.headers["Authorization"] == "Token k"
