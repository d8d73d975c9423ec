"""Hostile specs and inputs, table-driven: each is refused with a clear error, and nothing is
stored or run. Then the refusals that can only happen at run time (a templated URL, a
redirect): the node fails with a sentence and the target is never contacted.

Hosts here are refused by the egress policy, so nothing leaves the machine (the run-time
cases point at addresses that nothing should answer on anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.test import Client

from runs.models import NodeRun, Run, RunEvent, Session, Workflow, WorkflowVersion
from runs.services.runs import start_new_run
from runs.services.workflows import save_workflow
from tests.conftest import wait_for_run
from tests.specs import save, spec

pytestmark = pytest.mark.django_db(transaction=True)


def _node(node_id="a", handler="python", **config):
    """A node of any handler with ``config`` as keywords (and no ``dependencies`` key)."""
    return {"id": node_id, "handler": handler, "config": config}


def _spec(*nodes, **top):
    return spec(nodes, prefix="hostile", **top)


def _http(url, **extra):
    return _spec(_node(handler="call_external_service", url=url, **extra))


def _llm(base_url):
    return _spec(_node(handler="call_llm_service", prompt="hi", base_url=base_url, model="m"))


def _template(text):
    return _spec(_node(function="echo", kwargs={"x": text}))


def _nested(depth):
    return "[" * depth + "]" * depth


@dataclass
class Hostile:
    body: object  # dict/list: sent as JSON; bytes/str: sent as is
    status: int
    says: str  # a piece of the error sentence (case-insensitive)
    path: str = "/api/v1/workflows/"
    method: str = "post"
    content_type: str = "application/json"
    at: str | None = None  # the JSON path the error must name

    def send(self, client: Client):
        body = self.body
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        return getattr(client, self.method)(self.path, data=body, content_type=self.content_type)


SSRF = "private/loopback/link-local"
CASES: dict[str, Hostile] = {
    # --- SSRF targets, refused at validation (literal URLs) -----------------------------
    "cloud metadata": Hostile(_http("http://169.254.169.254/latest/meta-data/"), 400, SSRF),
    "metadata via IPv6-mapped": Hostile(_http("http://[::ffff:169.254.169.254]/"), 400, SSRF),
    "localhost": Hostile(_http("http://localhost:8000/admin/"), 400, SSRF),
    "localhost subdomain": Hostile(_http("http://db.localhost/"), 400, SSRF),
    "localhost trailing dot": Hostile(_http("http://localhost./"), 400, SSRF),
    "loopback 127.0.0.1": Hostile(_http("http://127.0.0.1:6379/"), 400, SSRF),
    "short loopback 127.1": Hostile(_http("http://127.1/"), 400, SSRF),
    "decimal loopback": Hostile(_http("http://2130706433/"), 400, SSRF),
    "hex loopback": Hostile(_http("http://0x7f000001/"), 400, SSRF),
    "octal loopback": Hostile(_http("http://0177.0.0.1/"), 400, SSRF),
    "IPv6 loopback": Hostile(_http("http://[::1]:5432/"), 400, SSRF),
    "unspecified 0.0.0.0": Hostile(_http("http://0.0.0.0:8000/"), 400, SSRF),
    "private 10/8": Hostile(_http("http://10.0.0.5/"), 400, SSRF),
    "private 192.168/16": Hostile(_http("https://192.168.1.1/"), 400, SSRF),
    "carrier-grade NAT": Hostile(_http("http://100.64.0.1/"), 400, SSRF),
    "IPv6 link-local": Hostile(_http("http://[fe80::1]/"), 400, SSRF),
    "file scheme": Hostile(_http("file:///etc/passwd"), 400, "only http and https"),
    "gopher scheme": Hostile(_http("gopher://127.0.0.1:6379/_FLUSHALL"), 400, "only http"),
    "LLM at metadata": Hostile(_llm("http://169.254.169.254/v1"), 400, SSRF),
    # --- template sandbox escapes ---------------------------------------------------------
    "__class__ walk": Hostile(
        _template("{{ ''.__class__.__mro__[1].__subclasses__() }}"), 400, "starting with '_'"
    ),
    "cycler globals": Hostile(_template("{{ cycler.__init__.__globals__ }}"), 400, "'__init__'"),
    "joiner globals": Hostile(_template("{{ joiner.__init__.__globals__.os }}"), 400, "'_"),
    "namespace globals": Hostile(_template("{{ namespace.__init__ }}"), 400, "'__init__'"),
    "fast-path dunder": Hostile(_template("{{ inputs.__class__ }}"), 400, "'__class__'"),
    "subscript dunder": Hostile(_template("{{ inputs['__class__'] }}"), 400, "'__class__'"),
    "attr filter": Hostile(_template("{{ inputs | attr('__class__') }}"), 400, "'__class__'"),
    "format-string trick": Hostile(
        _template("{{ '{0.__class__.__base__}'.format(inputs) }}"), 400, "private attribute"
    ),
    "lipsum is gone": Hostile(_template("{{ lipsum.__globals__ }}"), 400, "starting with '_'"),
    "self reference": Hostile(
        _template("{{ self._TemplateReference__context }}"), 400, "starting with '_'"
    ),
    "recursive macro": Hostile(
        _template("{% macro r(n) %}{{ r(n) }}{{ r(n) }}{% endmacro %}{{ r(1) }}"), 400, "macro"
    ),
    "include": Hostile(_template("{% include '/etc/passwd' %}"), 400, "include"),
    "template too long": Hostile(_template("{{ inputs }}" + "x" * 20_000), 400, "long"),
    # --- python handler: registered names only --------------------------------------------
    "import path os.system": Hostile(
        _spec(_node(function="os.system", kwargs={"command": "id"})), 400, "no python function"
    ),
    "import path builtins.eval": Hostile(
        _spec(_node(function="builtins.eval", kwargs={"source": "1"})), 400, "no python function"
    ),
    "dotted module function": Hostile(
        _spec(_node(function="subprocess.run")), 400, "no python function"
    ),
    # --- oversized and malformed documents -------------------------------------------------
    "body over the request limit": Hostile({"pad": "x" * 6_000_000}, 413, "larger than", at="$"),
    "spec over TRELLIS_MAX_SPEC_BYTES": Hostile(
        _spec(_node(function="echo", kwargs={"pad": "x" * 300_000})), 400, "TRELLIS_MAX_SPEC_BYTES"
    ),
    "too many nodes": Hostile(
        _spec(*[_node(f"n{i}", function="echo") for i in range(60)]), 400, "nodes"
    ),
    "JSON nested 5000 deep": Hostile(_nested(5000), 400, "nested too deeply"),
    "JSON nested 100 deep": Hostile(
        {"name": "deep", "dag": {"nodes": []}, "x": json.loads(_nested(100))}, 400, "deeper than"
    ),
    "invalid UTF-8": Hostile(b'{"name": "\xff\xfe"}', 400, "utf-8"),
    "not JSON at all": Hostile(b"{'name': nope", 400, "JSON parse error"),
    "a list, not a spec": Hostile([1, 2, 3], 400, "JSON object"),
    "YAML billion laughs": Hostile(
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n"
            for i in range(8)
        ),
        400,
        "too many values",
        content_type="application/yaml",
    ),
    "YAML python tag": Hostile(
        "!!python/object/apply:os.system ['id']\n", 400, "YAML", content_type="application/yaml"
    ),
    "validate endpoint, huge": Hostile(
        _spec(_node(function="echo", kwargs={"pad": "x" * 300_000})),
        400,
        "TRELLIS_MAX_SPEC_BYTES",
        path="/api/v1/workflows/validate/",
    ),
    "seed submit, metadata URL": Hostile(
        _http("http://169.254.169.254/"), 400, SSRF, path="/workflow"
    ),
    # --- run starts and events ---------------------------------------------------------------
    "run inputs nested too deep": Hostile(
        {"workflow": "target", "inputs": json.loads(_nested(200))},
        400,
        "nested",
        path="/api/v1/runs/",
    ),
    "run inputs of the wrong type": Hostile(
        {"workflow": "target", "inputs": {"n": "not a number"}},
        400,
        "integer",
        path="/api/v1/runs/",
    ),
    "run of an unknown workflow": Hostile(
        {"workflow": "no-such-thing"}, 400, "unknown workflow", path="/api/v1/runs/"
    ),
    "NUL character in session state": Hostile(
        {"state": {"note": "a\u0000b"}}, 400, "NUL character", path="/api/v1/sessions/"
    ),
    "NUL character in run inputs": Hostile(
        {"workflow": "target", "inputs": {"n\u0000": 1}}, 400, "NUL", path="/api/v1/runs/"
    ),
    "session state nested too deep": Hostile(
        {"state": json.loads("{" + '"a":{' * 100 + "}" * 100 + "}")},
        400,
        "nested",
        path="/api/v1/sessions/",
    ),
}


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Workflow, WorkflowVersion, Run, NodeRun, RunEvent, Session)
    }


@pytest.fixture
def hostile_client(user, user_client, settings):
    settings.TRELLIS_EGRESS_ALLOW = []  # the tests' default allows 127.0.0.1
    settings.TRELLIS_MAX_NODES = 50
    settings.TRELLIS_MAX_SPEC_BYTES = 200_000
    settings.TRELLIS_MAX_TEMPLATE_LENGTH = 10_000
    save(
        user,
        [_node("a", function="echo")],
        name="target",
        inputs={"type": "object", "properties": {"n": {"type": "integer"}}},
    )
    return user_client


def test_there_are_at_least_thirty_hostile_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_refused_clearly_and_changes_nothing(hostile_client, name):
    case = CASES[name]
    before = _counts()
    response = case.send(hostile_client)
    assert response.status_code == case.status, (name, response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body["error"], str) and body["error"], name
    assert isinstance(body["errors"], list), name
    text = (body["error"] + " " + json.dumps(body["errors"])).lower()
    assert case.says.lower() in text, (name, body)
    if case.at is not None:
        assert any(e["path"] == case.at for e in body["errors"]), body
    if body["errors"] and case.status == 400 and "spec" not in name:
        assert all(e["path"].startswith("$") for e in body["errors"]), body
    assert _counts() == before, f"{name}: the refused request changed the database"


def test_event_data_over_the_limit_is_413_and_the_node_keeps_waiting(
    hostile_client, user, settings
):
    settings.TRELLIS_MAX_EVENT_BYTES = 1024
    version, _ = save_workflow(
        _spec(_node("ask", handler="wait_for_event"), name="hitl-hostile"), user
    )
    run = start_new_run(version, user)
    NodeRun.objects.filter(run=run, node_id="ask").update(state="WAITING")
    before = _counts()
    response = hostile_client.post(
        f"/api/v1/runs/{run.pk}/events/",
        data=json.dumps({"node": "ask", "data": {"blob": "x" * 5000}}),
        content_type="application/json",
    )
    assert response.status_code == 413
    assert "TRELLIS_MAX_EVENT_BYTES" in response.json()["error"]
    assert response.json()["errors"][0]["path"] == "$.data"
    assert NodeRun.objects.get(run=run, node_id="ask").state == "WAITING"
    assert _counts() == before


# --------------------------------------------------------------------------- run time

RUNTIME_TARGETS = {
    "templated metadata URL": ("{{ inputs.url }}", "http://169.254.169.254/latest/"),
    "templated hex private address": ("{{ inputs.url }}", "http://0x0a000001/"),
    "templated IPv6 loopback": ("{{ inputs.url }}", "http://[::1]:1/"),
}


@pytest.mark.integration
@pytest.mark.parametrize("name", list(RUNTIME_TARGETS))
def test_templated_internal_url_fails_the_node_at_run_time(worker, user, name):
    """The worker allows 127.0.0.1 and localhost (tests/settings.py), nothing else."""
    template, url = RUNTIME_TARGETS[name]
    version, _ = save_workflow(_http(template, retries=0), user)
    run = wait_for_run(start_new_run(version, user, inputs={"url": url}).pk)
    node = NodeRun.objects.get(run=run, node_id="a")
    assert run.status == "FAILED" and node.state == "FAILED"
    assert SSRF in node.error["message"] and "TRELLIS_EGRESS_ALLOW" in node.error["message"]
    assert node.attempts is None or len(node.attempts or []) <= 1


@pytest.mark.integration
@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://0.0.0.0:6379/",
    ],
)
def test_redirect_to_a_private_address_fails_the_node(worker, user, json_server, target):
    hop = json_server.redirect("GET", "/hop", target)
    version, _ = save_workflow(_http(hop, retries=0), user)
    run = wait_for_run(start_new_run(version, user).pk)
    node = NodeRun.objects.get(run=run, node_id="a")
    assert node.state == "FAILED"
    assert SSRF in node.error["message"], node.error
    assert len(json_server.requests) == 1  # the hop itself, nothing after it


@pytest.mark.integration
def test_a_template_that_outruns_the_clock_fails_the_node(worker, user):
    version, _ = save_workflow(
        _spec(
            _node(
                function="echo",
                kwargs={
                    "x": "{% for a in range(100000) %}{% for b in range(100000) %}"
                    "{% endfor %}{% endfor %}"
                },
            )
        ),
        user,
    )
    run = wait_for_run(start_new_run(version, user).pk, timeout=60)
    node = NodeRun.objects.get(run=run, node_id="a")
    assert node.state == "FAILED"
    assert "TRELLIS_MAX_RENDER_SECONDS" in node.error["message"], node.error


@pytest.mark.integration
def test_too_many_map_items_fail_the_node_before_any_item_runs(worker, user, settings):
    version, _ = save_workflow(
        _spec(
            {
                "id": "each",
                "handler": "python",
                "map": "{{ range(5000) | list }}",
                "config": {"function": "count", "kwargs": {"key": "never-{{ index }}"}},
            }
        ),
        user,
    )
    run = wait_for_run(start_new_run(version, user).pk)
    node = NodeRun.objects.get(run=run, node_id="each")
    assert node.state == "FAILED"
    assert "TRELLIS_MAX_MAP_ITEMS" in node.error["message"]


def test_odd_query_values_are_answered_without_a_server_error(hostile_client):
    # An offset PostgreSQL refuses (beyond ±15:59) is normalised to UTC first.
    far = hostile_client.get("/api/v1/runs/", {"created_after": "0356-08-29T11:57:15-23:57"})
    assert far.status_code == 200 and far.json()["results"] == []
    assert hostile_client.get("/api/v1/runs/", {"created_after": "yesterday"}).status_code == 400
    # A NUL character in a filter: no match on SQLite, refused by PostgreSQL; never a 500.
    nul = hostile_client.get("/api/v1/runs/", {"workflow": "a\x00b"})
    assert nul.status_code in (200, 400), nul.status_code
    assert hostile_client.get("/api/v1/runs/", {"session": "not-a-uuid"}).status_code == 400
