"""The ``trellis`` command (trellis_client/cli.py), run as a user runs it: a process of its own
in a directory outside the project, with no Django settings and no server variables, only
TRELLIS_URL / TRELLIS_TOKEN (or a profile), against a real daphne and a real worker."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tomllib

import pytest
import yaml
from rest_framework.authtoken.models import Token

from runs.models import NodeRun
from tests.client_helpers import (
    ROOT,
    TRELLIS,
    StreamCuttingProxy,
    cyclic_spec,
    failing_spec,
    json_lines,
    steps_spec,
    trellis,
    user_env,
    waiting_spec,
)
from tests.conftest import wait_for_run, wait_node
from tests.servers import refused_url
from tests.specs import unique_name
from trellis_client import Client, Conflict

transactional = pytest.mark.django_db(transaction=True)


@pytest.fixture
def home(tmp_path_factory):
    """The user's working directory (spec files live here) and config home, outside the
    project."""
    return tmp_path_factory.mktemp("trellis-user")


@pytest.fixture
def token(user):
    return Token.objects.create(user=user).key


@pytest.fixture
def env(web_server, token, home):
    return user_env(web_server, token, home / "config")


def write_specs(home, *docs, yaml_last: bool = True):
    """Each doc as a file in ``home`` (JSON; the last one YAML); the file names."""
    names = []
    for position, doc in enumerate(docs):
        as_yaml = yaml_last and position == len(docs) - 1
        name = f"{doc['name']}.{'yaml' if as_yaml else 'json'}"
        (home / name).write_text(yaml.safe_dump(doc) if as_yaml else json.dumps(doc))
        names.append(name)
    return names


# --------------------------------------------------------------------------------------
# Without a server


@pytest.mark.unit
def test_pyproject_installs_the_trellis_script_from_the_cli_module():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["trellis"] == "trellis_client.cli:main"
    assert "trellis_client*" in project["tool"]["setuptools"]["packages"]["find"]["include"]


@pytest.mark.unit
def test_usage_errors_exit_2(tmp_path):
    env = user_env("http://127.0.0.1:9", "t", tmp_path)
    missing = trellis("run", "start", env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "NAME" in missing.stderr
    bad_pair = trellis("run", "start", "x", "--inputs-json", "[1]", env=env, cwd=tmp_path)
    assert bad_pair.returncode == 2 and "--inputs-json must be a JSON object" in bad_pair.stderr
    no_file = trellis("workflow", "push", "absent.yaml", env=env, cwd=tmp_path)
    assert no_file.returncode == 2 and "absent.yaml: no such file" in no_file.stderr


@pytest.mark.unit
def test_no_server_url_and_an_unreachable_server_exit_2_saying_why(tmp_path):
    nowhere = trellis("run", "list", env=user_env(None, None, tmp_path), cwd=tmp_path)
    assert nowhere.returncode == 2 and "no Trellis server URL" in nowhere.stderr
    url = refused_url("")
    refused = trellis("run", "list", env=user_env(url, "t", tmp_path), cwd=tmp_path)
    assert refused.returncode == 2
    assert f"cannot reach the Trellis server at {url}" in refused.stderr


# --------------------------------------------------------------------------------------
# Against the server


@transactional
def test_push_list_and_validate_workflow_files(env, home, web_server):
    docs = [steps_spec(unique_name("cli")), failing_spec(unique_name("cli")),
            waiting_spec(unique_name("cli"))]  # fmt: skip
    files = write_specs(home, *docs)

    pushed = trellis("workflow", "push", *files, env=env, cwd=home)
    assert pushed.returncode == 0, pushed.stderr
    for doc, name in zip(docs, files, strict=True):
        assert f"{doc['name']} v1 created ({name})" in pushed.stdout
    again = trellis("workflow", "push", files[0], "--json", env=env, cwd=home)
    assert json.loads(again.stdout) == [{"name": docs[0]["name"], "version": 1, "created": False}]

    listed = trellis("workflow", "list", "--json", env=env, cwd=home)
    assert listed.returncode == 0
    assert {doc["name"] for doc in docs} <= {w["name"] for w in json.loads(listed.stdout)}
    table = trellis("workflow", "list", env=env, cwd=home)
    assert docs[2]["name"] in table.stdout and "\x1b[" not in table.stdout  # no TTY, no escapes

    valid = trellis("workflow", "validate", files[0], env=env, cwd=home)
    assert valid.returncode == 0
    assert "valid; plan: [first] -> [second] -> [third]" in valid.stdout
    (cyclic_file,) = write_specs(home, cyclic_spec(unique_name("cycle")))
    invalid = trellis("workflow", "validate", cyclic_file, env=env, cwd=home)
    assert invalid.returncode == 1
    assert (
        f"{cyclic_file}: $.dag.nodes[0].dependencies: dependencies form a cycle: "
        "left -> right -> left." in invalid.stdout
    ), invalid.stdout


@transactional
def test_follow_exits_0_when_the_run_completes_and_1_when_it_fails(worker, env, home):
    ok, bad = steps_spec(unique_name("ok"), seconds=0.2), failing_spec(unique_name("bad"))
    assert (
        trellis("workflow", "push", *write_specs(home, ok, bad), env=env, cwd=home).returncode == 0
    )

    completed = trellis("run", "start", ok["name"], "--follow", env=env, cwd=home)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("started run ")
    assert any("node.status" in line and "third" in line and "COMPLETED" in line for line in lines)
    assert any(line.startswith("run ") and line.endswith("COMPLETED") for line in lines)
    assert "\x1b[" not in completed.stdout

    failed = trellis("run", "start", bad["name"], "--follow", env=env, cwd=home)
    assert failed.returncode == 1, failed.stderr
    assert "FAILED" in failed.stdout and "boom" in failed.stdout


@transactional
def test_follow_on_a_terminal_draws_the_live_view(worker, env, home):
    doc = steps_spec(unique_name("tty"), seconds=0.2)
    assert trellis("workflow", "push", *write_specs(home, doc), env=env, cwd=home).returncode == 0
    terminal, child_side = os.openpty()
    process = subprocess.Popen(
        [*TRELLIS, "run", "start", doc["name"], "--follow"],
        stdout=child_side, stderr=subprocess.PIPE, env={**env, "COLUMNS": "120"}, cwd=home,
    )  # fmt: skip
    os.close(child_side)
    screen = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(terminal)
    assert process.wait(timeout=60) == 0, process.stderr.read()
    text = screen.decode()
    assert "\x1b[" in text  # drawn with escape codes (colours, cursor moves)
    assert "node" in text and "duration" in text and "third" in text and "COMPLETED" in text


@transactional
def test_a_waiting_run_gets_its_event_and_completes(worker, env, home):
    doc = waiting_spec(unique_name("wait"))
    assert trellis("workflow", "push", *write_specs(home, doc), env=env, cwd=home).returncode == 0

    started = trellis(
        "run", "start", doc["name"], "--input", "who=ada", "--json", env=env, cwd=home
    )
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)
    assert run["workflow"] == doc["name"] and run["inputs"] == {"who": "ada"}
    wait_node(run["id"], "approve", {"WAITING"})

    sent = trellis("run", "send-event", run["id"], "approve", "--data", '{"ok": true}', env=env,
                   cwd=home)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "node approve: COMPLETED" in sent.stdout

    followed = trellis("run", "events", run["id"], "--follow", "--json", env=env, cwd=home)
    assert followed.returncode == 0, followed.stderr
    *events, final = json_lines(followed.stdout)
    assert final["status"] == "COMPLETED" and final["result"] == {"ok": True}
    assert events[-1]["kind"] in ("run.result", "run.status")

    history = trellis("run", "events", run["id"], "--json", env=env, cwd=home)
    assert [e["id"] for e in json.loads(history.stdout)] == [e["id"] for e in events]
    shown = trellis("run", "show", run["id"], env=env, cwd=home)
    assert "COMPLETED" in shown.stdout and 'result: {"ok": true}' in shown.stdout

    paused = trellis("run", "pause", run["id"], env=env, cwd=home)
    with Client(env["TRELLIS_URL"], env["TRELLIS_TOKEN"]) as client:
        with pytest.raises(Conflict) as conflict:
            client.pause_run(run["id"])
    assert paused.returncode == 2 and paused.stdout == ""
    assert conflict.value.message in paused.stderr and "HTTP 409" in paused.stderr
    assert "cannot move run from COMPLETED to PAUSED" in paused.stderr


@transactional
def test_node_actions_from_the_command_line(worker, env, home):
    doc = failing_spec(unique_name("node"))
    assert trellis("workflow", "push", *write_specs(home, doc), env=env, cwd=home).returncode == 0
    started = trellis("run", "start", doc["name"], "--json", env=env, cwd=home)
    run_id = json.loads(started.stdout)["id"]
    assert wait_for_run(run_id).status == "FAILED"

    skipped = trellis("run", "skip", run_id, "explode", env=env, cwd=home)
    assert skipped.returncode == 0, skipped.stderr
    assert "node explode: SKIPPED" in skipped.stdout
    assert wait_for_run(run_id).status == "COMPLETED"

    cleared = trellis("run", "clear", run_id, "explode", "--only-this", env=env, cwd=home)
    assert cleared.returncode == 0, cleared.stderr
    assert f"run {run_id}: " in cleared.stdout and "node explode: " in cleared.stdout
    assert wait_for_run(run_id).status == "FAILED"
    assert NodeRun.objects.get(run_id=run_id, node_id="explode").attempt == 2

    marked = trellis("run", "mark", run_id, "explode", "--output", '{"v": 1}', "--json", env=env,
                     cwd=home)  # fmt: skip
    assert marked.returncode == 0, marked.stderr
    nodes = {n["id"]: n for n in json.loads(marked.stdout)["nodes"]}
    assert nodes["explode"]["state"] == "COMPLETED" and nodes["explode"]["output"] == {"v": 1}
    assert wait_for_run(run_id).status == "COMPLETED"

    refused = trellis("run", "mark", run_id, "explode", "--failed", "no", env=env, cwd=home)
    assert refused.returncode == 2 and "HTTP 409; current: COMPLETED" in refused.stderr


@transactional
def test_a_bad_token_exits_2_with_an_authentication_message(web_server, home):
    env = user_env(web_server, "not-a-token", home)
    result = trellis("run", "list", env=env, cwd=home)
    assert result.returncode == 2
    assert "authentication failed: Invalid token." in result.stderr


@transactional
def test_profiles_are_saved_private_and_used(web_server, token, home):
    env = user_env(None, None, home / "config")
    saved = trellis("profile", "save", "local", "--url", web_server, "--token", token, env=env,
                    cwd=home)  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    path = home / "config" / "trellis" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert trellis("--profile", "local", "run", "list", env=env, cwd=home).returncode == 0
    assert trellis("run", "list", "--json", env=env, cwd=home).stdout.strip() == "[]"  # default
    unknown = trellis("run", "list", "--profile", "nope", env=env, cwd=home)
    assert unknown.returncode == 2 and "no profile named 'nope'" in unknown.stderr
    listed = trellis("profile", "list", env=env, cwd=home)
    assert web_server in listed.stdout and token not in listed.stdout


@transactional
def test_follow_resumes_after_a_dropped_stream_without_losing_or_repeating(
    worker, web_server, token, home
):
    proxy = StreamCuttingProxy(web_server, cut_at=3)
    try:
        env = user_env(proxy.url, token, home)
        doc = steps_spec(unique_name("drop"), seconds=0.5)
        pushed = trellis("workflow", "push", *write_specs(home, doc), env=env, cwd=home)
        assert pushed.returncode == 0, pushed.stderr
        result = trellis("run", "start", doc["name"], "--follow", "--json", env=env, cwd=home)
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    started, *events, final = json_lines(result.stdout)
    assert proxy.cuts == 1 and proxy.streams >= 2  # cut once, then reconnected
    assert final["status"] == "COMPLETED"
    with Client(web_server, token) as client:
        history = client.events(started["id"])
    assert [e["id"] for e in events] == [e.id for e in history]


@transactional
def test_reject_a_waiting_node_from_the_command_line_and_the_client(worker, env, home):
    doc = waiting_spec(unique_name("reject"))
    assert trellis("workflow", "push", *write_specs(home, doc), env=env, cwd=home).returncode == 0
    started = trellis(
        "run", "start", doc["name"], "--input", "who=ada", "--json", env=env, cwd=home
    )
    run = json.loads(started.stdout)
    wait_node(run["id"], "approve", {"WAITING"})

    listed = trellis("run", "list", "--needs-input", "--json", env=env, cwd=home)
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [run["id"]]
    with Client(env["TRELLIS_URL"], env["TRELLIS_TOKEN"]) as client:
        [waiting] = client.list_runs(needs_input=True)
        assert waiting.id == run["id"] and waiting.needs_input is True

    missing = trellis("run", "reject", run["id"], "approve", env=env, cwd=home)
    assert missing.returncode == 2 and "--reason" in missing.stderr
    blank = trellis("run", "reject", run["id"], "approve", "--reason", " ", env=env, cwd=home)
    assert blank.returncode == 2 and "reject" in blank.stderr
    assert NodeRun.objects.get(run_id=run["id"], node_id="approve").state == "WAITING"

    rejected = trellis(
        "run", "reject", run["id"], "approve", "--reason", "wrong person", env=env, cwd=home
    )
    assert rejected.returncode == 0, rejected.stderr
    assert "node approve: FAILED (rejected)" in rejected.stdout
    assert wait_for_run(run["id"]).status == "FAILED"
    node = NodeRun.objects.get(run_id=run["id"], node_id="approve")
    assert node.error["message"] == "wrong person" and node.error["type"] == "Rejected"

    with Client(env["TRELLIS_URL"], env["TRELLIS_TOKEN"]) as client:
        with pytest.raises(Conflict) as conflict:
            client.reject_event(run["id"], "approve", "again")
        assert client.list_runs(needs_input=True) == []
    assert conflict.value.status == 409
