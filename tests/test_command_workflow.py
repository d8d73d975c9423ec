"""``manage.py workflow``: import, sync, list and run (input parsing and validation).

Following a run with ``--wait`` needs a live worker and is covered by the integration tests.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from runs.authoring import Workflow as PythonWorkflow
from runs.models import Run, Workflow, WorkflowVersion
from runs.services.runs import start_new_run
from tests.conftest import wait_for_run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

GREET = {
    "name": "greet",
    "description": "test workflow",
    "inputs": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "default": "world"},
            "times": {"type": "integer", "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name"],
    },
    "dag": {
        "nodes": [
            {"id": "start", "handler": "input"},
            {"id": "out", "handler": "output", "dependencies": ["start"]},
        ]
    },
}


def run_command(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("workflow", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write(tmp_path: Path, name: str, doc: dict | str) -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


@pytest.fixture
def greet(admin_user, tmp_path):
    """``greet`` imported; it belongs to pytest-django's ``admin_user``, the only superuser."""
    run_command("import", str(write(tmp_path, "greet.json", GREET)))
    return Workflow.objects.get(name="greet")


# -- import ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_valid_file_creates_version_owned_by_first_superuser(admin_user, tmp_path):
    out, _ = run_command("import", str(write(tmp_path, "greet.json", GREET)))

    assert out.strip() == "imported greet v1"
    workflow = Workflow.objects.get(name="greet")
    assert workflow.owner == admin_user
    assert workflow.latest_version == 1
    assert workflow.versions.get().spec == GREET


@pytest.mark.django_db
def test_import_identical_spec_is_unchanged_and_changed_spec_is_new_version(admin_user, tmp_path):
    path = write(tmp_path, "greet.json", GREET)
    run_command("import", str(path))

    out, _ = run_command("import", str(path))
    assert out.strip() == "greet unchanged (v1)"
    assert WorkflowVersion.objects.count() == 1

    write(tmp_path, "greet.json", {**GREET, "description": "changed"})
    out, _ = run_command("import", str(path))
    assert out.strip() == "imported greet v2"
    assert Workflow.objects.get(name="greet").latest_version == 2


@pytest.mark.django_db
def test_import_yaml_and_directories(admin_user, tmp_path):
    yaml_text = (
        "name: from-yaml\n"
        "dag:\n"
        "  nodes:\n"
        "    - {id: start, handler: input}\n"
        "    - {id: out, handler: output, dependencies: [start]}\n"
    )
    folder = tmp_path / "specs"
    folder.mkdir()
    write(folder, "a.yaml", yaml_text)
    write(folder, "b.json", GREET)
    write(folder, "notes.txt", "not a spec")

    out, _ = run_command("import", str(folder))

    assert out.splitlines() == ["imported from-yaml v1", "imported greet v1"]


@pytest.mark.django_db
def test_import_invalid_spec_prints_every_error_and_saves_nothing(admin_user, tmp_path):
    bad = {
        "name": "bad",
        "dag": {
            "nodes": [
                {"id": "a", "handler": "input", "dependencies": ["missing"]},
                {"id": "a", "handler": "no_such_handler"},
            ]
        },
    }
    good = write(tmp_path, "good.json", GREET)
    bad_path = write(tmp_path, "bad.json", bad)
    err = StringIO()

    with pytest.raises(CommandError, match="nothing imported"):
        call_command("workflow", "import", str(good), str(bad_path), stdout=StringIO(), stderr=err)

    lines = err.getvalue().splitlines()
    assert len(lines) >= 3  # unknown dependency, duplicate id, unknown handler
    assert all(line.startswith(f"{bad_path}: $.dag.nodes[") for line in lines)
    assert any("missing" in line for line in lines)
    assert any("no_such_handler" in line for line in lines)
    assert Workflow.objects.count() == 0  # the valid file was not saved either


@pytest.mark.django_db
def test_import_unparsable_file_reports_it(admin_user, tmp_path):
    path = write(tmp_path, "broken.yaml", "name: [unclosed\n")
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("workflow", "import", str(path), stdout=StringIO(), stderr=err)
    assert err.getvalue().startswith(f"{path}: $")
    assert Workflow.objects.count() == 0


@pytest.mark.django_db
def test_import_missing_file_is_an_error(admin_user, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run_command("import", str(tmp_path / "nope.json"))


@pytest.mark.django_db
def test_import_without_any_superuser_asks_for_one(tmp_path):
    with pytest.raises(CommandError, match="no superuser"):
        run_command("import", str(write(tmp_path, "greet.json", GREET)))


@pytest.mark.django_db
def test_examples_are_valid(admin_user):
    out, _ = run_command("import", str(EXAMPLES))
    assert "imported hello v1" in out.splitlines()
    assert "imported Simple LLM Workflow v1" in out.splitlines()


# -- list ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_shows_name_version_and_owner(greet):
    out, _ = run_command("list")
    header, row = out.splitlines()
    assert header.split()[:3] == ["NAME", "VERSION", "OWNER"]
    assert row.split()[:3] == ["greet", "v1", "admin"]


@pytest.mark.django_db
def test_list_without_workflows(admin_user):
    out, _ = run_command("list")
    assert out.startswith("no workflows")


# -- run -------------------------------------------------------------------------------
# These runs are started inside the test transaction, which never commits, so no message
# reaches a broker: the tests check what the command created.


@pytest.mark.django_db
def test_run_parses_input_values_as_json_else_strings(greet):
    out, _ = run_command(
        "run", "greet", "--input", "name=Ada", "--input", "times=3", "--input", 'tags=["x"]'
    )

    run = Run.objects.get()
    assert out.strip() == f"started run {run.pk} (greet v1)"
    assert run.inputs == {"name": "Ada", "times": 3, "tags": ["x"]}
    assert run.status == "RUNNING"
    assert run.nodes.count() == 2


@pytest.mark.django_db
def test_run_fills_defaults_and_merges_inputs_json(greet):
    run_command("run", "greet", "--inputs-json", '{"times": 2, "name": "x"}', "--input", "times=5")
    assert Run.objects.get().inputs == {"name": "x", "times": 5}

    Run.objects.all().delete()
    run_command("run", "greet")
    assert Run.objects.get().inputs == {"name": "world"}


@pytest.mark.django_db
def test_run_keeps_raw_text_for_string_fields(greet):
    run_command("run", "greet", "--input", "name=42", "--input", "times=42")
    assert Run.objects.get().inputs == {"name": "42", "times": 42}


@pytest.mark.django_db
def test_run_with_invalid_inputs_prints_errors_and_creates_nothing(greet):
    err = StringIO()
    with pytest.raises(CommandError, match="invalid inputs for greet v1; no run created"):
        call_command(
            "workflow",
            "run",
            "greet",
            "--inputs-json",
            '{"name": 1}',
            "--input",
            "times=zero",
            stdout=StringIO(),
            stderr=err,
        )
    lines = err.getvalue().splitlines()
    assert any(line.startswith("$.inputs.name: 1 is not of type 'string'") for line in lines)
    assert any(line.startswith("$.inputs.times: 'zero' is not of type 'integer'") for line in lines)
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "novalue"], "expected KEY=VALUE"),
        (["--input", "=1"], "expected KEY=VALUE"),
        (["--inputs-json", "{bad"], "not valid JSON"),
        (["--inputs-json", "[1, 2]"], "must be a JSON object"),
        (["--version", "9"], "has no version 9"),
        (["--user", "ghost"], "no user named 'ghost'"),
    ],
)
@pytest.mark.django_db
def test_run_argument_errors_create_nothing(greet, args, message):
    with pytest.raises(CommandError, match=message):
        run_command("run", "greet", *args)
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_run_unknown_workflow(admin_user):
    with pytest.raises(CommandError, match="no workflow named 'nope'"):
        run_command("run", "nope")


@pytest.mark.django_db
def test_run_of_someone_elses_workflow_is_refused_for_a_regular_user(greet, other_user):
    with pytest.raises(CommandError, match="no workflow named 'greet' visible to bob"):
        run_command("run", "greet", "--user", "bob")
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_run_pins_the_requested_version(greet, tmp_path):
    run_command("import", str(write(tmp_path, "greet.json", {**GREET, "description": "v2"})))
    run_command("run", "greet", "--version", "1")
    assert Run.objects.get().workflow_version.version == 1


# -- sync (Python workflows) -----------------------------------------------------------


def _python_workflow(description: str) -> PythonWorkflow:
    """``py-sync``, a new definition each call (the registry keeps the last one)."""
    wf = PythonWorkflow("py-sync", description=description)
    wf.output(value=wf.inputs.x)
    return wf


@pytest.mark.django_db
def test_sync_creates_then_keeps_then_versions_a_changed_python_workflow(
    admin_user, python_workflows
):
    _python_workflow("first")
    assert run_command("sync")[0] == "py-sync: created v1\n"
    assert run_command("sync")[0] == "py-sync: unchanged v1\n"
    assert WorkflowVersion.objects.filter(workflow__name="py-sync").count() == 1
    _python_workflow("second")
    assert run_command("sync")[0] == "py-sync: new version v2\n"
    workflow = Workflow.objects.get(name="py-sync")
    assert (workflow.latest_version, workflow.owner, workflow.description) == (
        2,
        admin_user,
        "second",
    )


@pytest.mark.django_db
def test_sync_check_passes_in_sync_and_fails_naming_what_differs(admin_user, python_workflows):
    _python_workflow("first")
    with pytest.raises(CommandError, match=r"differ from the database: py-sync \(run"):
        run_command("sync", "--check")
    assert not Workflow.objects.filter(name="py-sync").exists()  # --check saves nothing
    run_command("sync")
    out, _ = run_command("sync", "--check")
    assert out == "py-sync: in sync v1\n"
    _python_workflow("changed")
    with pytest.raises(CommandError, match="differ from the database: py-sync"):
        run_command("sync", "--check")
    assert Workflow.objects.get(name="py-sync").latest_version == 1


@pytest.mark.django_db
def test_sync_of_an_invalid_python_workflow_saves_nothing(admin_user, python_workflows):
    _python_workflow("fine")
    broken = PythonWorkflow("py-broken")
    broken.node("a", "no_such_handler")
    with pytest.raises(CommandError, match="invalid Python workflow: py-broken; nothing synced"):
        run_command("sync")
    assert not Workflow.objects.filter(name__startswith="py-").exists()


@pytest.mark.django_db
def test_sync_owner_is_the_named_user(admin_user, user, python_workflows):
    _python_workflow("mine")
    run_command("sync", "--user", user.username)
    assert Workflow.objects.get(name="py-sync").owner == user


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_synced_python_workflow_runs_to_completed_on_the_worker(worker, admin_user):
    out, _ = run_command("sync")  # tests/testapp/workflows.py: py-restock
    assert "py-restock: created v1" in out
    version = WorkflowVersion.objects.get(workflow__name="py-restock", version=1)
    run = start_new_run(
        version, admin_user, inputs={"sku": "bolt", "on_hand": 4, "tags": ["red", "big"]}
    )
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    assert run.result == {
        "order": {"sku": "bolt", "qty": 6, "node": "place_order"},
        "labels": ["0:red", "1:big"],
        "note": "restocked bolt",
    }
