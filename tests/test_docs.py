"""The docs stay true: the reference pages match the code (and go stale when it changes), every
example under docs/examples/ runs, and pages show code only by including those examples."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from handlers import registry
from handlers.http import CallExternalService
from handlers.registry import Handler
from runs.management.reference.api import openapi_document
from runs.management.reference.configuration import SETTINGS_SOURCE, settings_page
from runs.management.reference.engine import events_page
from runs.management.reference.markdown import GENERATED, ReferenceGap, python_sources
from runs.management.reference.pages import OUTPUT, build_pages, stale_pages, write_pages
from runs.rules import config
from tests.client_helpers import user_env
from tests.conftest import child_env, wait_for_run

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"

# --------------------------------------------------------------------------------------
# Reference pages


@pytest.fixture(scope="module")
def document():
    return openapi_document()


def stale_after_change() -> list[str]:
    """The pages ``docs_reference --check`` calls stale now, against the committed ones."""
    with pytest.raises(CommandError) as failure:
        call_command("docs_reference", "--check", "--output", str(OUTPUT))
    return re.findall(r"\b([\w-]+\.md)\b", str(failure.value))


def test_the_committed_reference_pages_match_the_code(capsys):
    call_command("docs_reference", "--check")
    assert "7 reference pages match the code" in capsys.readouterr().out
    for name in build_pages():
        first = (OUTPUT / name).read_text().splitlines()[0]
        assert first == GENERATED, name


def test_the_api_page_reads_the_document_the_server_serves(client, document):
    served = client.get("/api/schema/?format=json")
    assert json.loads(served.content) == document


def test_a_changed_knob_default_makes_the_settings_and_spec_pages_stale(monkeypatch):
    knob = config.KNOBS["TRELLIS_MAX_NODES"]
    monkeypatch.setitem(config.KNOBS, "TRELLIS_MAX_NODES", replace(knob, default=123))
    assert stale_after_change() == ["settings.md", "spec.md"]
    assert "| `TRELLIS_MAX_NODES` | `123` |" in build_pages()["settings.md"]


class DocsProbe(Handler):
    description = "A handler that exists for this test only."
    config_schema = {
        "type": "object",
        "properties": {"depth": {"type": "integer", "minimum": 2, "description": "how deep"}},
        "required": ["depth"],
        "additionalProperties": False,
    }


def test_a_new_handler_makes_the_handlers_page_stale(monkeypatch):
    monkeypatch.setitem(registry._handlers, "docs_probe", DocsProbe())
    assert stale_after_change() == ["handlers.md"]
    handlers = build_pages()["handlers.md"]
    assert "## `docs_probe`\n\nA handler that exists for this test only." in handlers
    assert "| `depth` | integer, ≥ 2 | yes |   | how deep |" in handlers


def test_a_changed_handler_schema_makes_the_handlers_page_stale(monkeypatch):
    schema = CallExternalService.config_schema
    retries = {**schema["properties"]["retries"], "maximum": 7}
    changed = {**schema, "properties": {**schema["properties"], "retries": retries}}
    monkeypatch.setattr(CallExternalService, "config_schema", changed)
    assert stale_after_change() == ["handlers.md"]
    assert "| `retries` | integer, ≥ 0, ≤ 7 | no | `3` |" in build_pages()["handlers.md"]


def test_stale_pages_names_missing_changed_and_leftover_files(tmp_path, document):
    pages = build_pages(document)
    assert sorted(write_pages(pages, tmp_path)) == sorted(pages)
    assert stale_pages(pages, tmp_path) == []
    (tmp_path / "cli.md").write_text("edited by hand\n")
    (tmp_path / "spec.md").unlink()
    (tmp_path / "old.md").write_text(GENERATED + "\n# a page the code no longer makes\n")
    (tmp_path / "notes.md").write_text("# hand-written: not ours to judge\n")
    assert stale_pages(pages, tmp_path) == ["cli.md", "spec.md", "old.md"]
    assert write_pages(pages, tmp_path) == ["cli.md", "spec.md", "old.md"]
    assert stale_pages(pages, tmp_path) == [] and not (tmp_path / "old.md").exists()


def test_an_event_kind_or_data_key_without_a_description_stops_the_generator(document):
    code = [source for _path, source in python_sources(ROOT / "runs", ROOT / "handlers")]
    assert "`node.progress` | How far" in events_page(document, code)
    new_kind = 'record_event(run.pk, "run.audited", {"by": user})'
    with pytest.raises(ReferenceGap, match=r"^event kinds: no description for run\.audited \("):
        events_page(document, [*code, new_kind])
    new_key = 'ctx.emit("node.progress", {"fraction": 1, "eta": 3})'
    with pytest.raises(
        ReferenceGap, match=r"^data of node\.progress events: no description for eta"
    ):
        events_page(document, [*code, new_key])


def test_an_environment_variable_without_a_description_stops_the_generator():
    source = SETTINGS_SOURCE.read_text() + '\nSURPRISE = env_int("TRELLIS_SURPRISE", 3)\n'
    with pytest.raises(ReferenceGap, match="no description for TRELLIS_SURPRISE"):
        settings_page(settings_source=source)
    assert "`TRELLIS_MAX_NODES`" in settings_page(settings_source=SETTINGS_SOURCE.read_text())


# --------------------------------------------------------------------------------------
# Examples: every file under docs/examples/ runs

SAMPLE_OUTPUT = {".txt", ".out"}
SPECS = {".yaml", ".yml", ".json"}
DJANGO_MODULES = {"django", "runs", "handlers"}
EXAMPLE_FILES = sorted(
    path.name
    for path in EXAMPLES.iterdir()
    if path.is_file() and path.name != "README.md" and path.suffix not in SAMPLE_OUTPUT
)
#: Runs ``python -c … FILE``: Django set up with the test settings, then the file as __main__.
DJANGO_WRAPPER = (
    "import runpy, sys, django; django.setup(); runpy.run_path(sys.argv[1], run_name='__main__')"
)


def validate_only(path: Path) -> bool:
    if path.suffix == ".json":
        return path.name.endswith(".validate.json")
    first = path.read_text().splitlines()[:1]
    return first == ["# docs: validate-only"]


def uses_django(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    return any(name.split(".")[0] in DJANGO_MODULES for name in imported)


def run_spec(path: Path, api, request) -> None:
    media = "application/json" if path.suffix == ".json" else "application/yaml"
    body = path.read_bytes()
    answer = api.post("/api/v1/workflows/validate/", body, content_type=media)
    assert answer.status_code == 200, answer.content
    assert answer.json()["valid"], answer.json()["errors"]
    if validate_only(path):
        return
    request.getfixturevalue("worker")
    saved = api.post("/api/v1/workflows/", body, content_type=media)
    assert saved.status_code in (200, 201), saved.content
    doc = json.loads(body) if path.suffix == ".json" else yaml.safe_load(body)
    inputs = ((doc.get("inputs") or {}).get("examples") or [{}])[0]
    started = api.post("/api/v1/runs/", {"workflow": doc["name"], "inputs": inputs}, format="json")
    assert started.status_code == 201, started.content
    run = wait_for_run(started.json()["id"])
    assert run.status == "COMPLETED", (run.status, run.result)


def trellis_shim(folder: Path) -> Path:
    """A ``trellis`` command on PATH that runs this checkout's client."""
    folder.mkdir()
    script = folder / "trellis"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m trellis_client "$@"\n')
    script.chmod(0o755)
    return folder


def run_program(path: Path, user, request, tmp_path: Path) -> None:
    server = request.getfixturevalue("web_server")
    request.getfixturevalue("worker")
    user.is_staff = True  # metrics.sh reads /metrics, which is for staff
    user.save(update_fields=["is_staff"])
    token = Token.objects.create(user=user).key
    env = user_env(server, token, tmp_path / "config")
    if path.suffix == ".sh":
        env["PATH"] = f"{trellis_shim(tmp_path / 'bin')}:{env['PATH']}"
        argv = ["bash", "-e", str(path)]
    elif uses_django(path):
        env = child_env(TRELLIS_URL=server, TRELLIS_TOKEN=token, PYTHONPATH=str(ROOT))
        argv = [sys.executable, "-c", DJANGO_WRAPPER, str(path)]
    else:
        argv = [sys.executable, str(path)]
    result = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{path.name} exited {result.returncode}:\n" + (
        result.stdout[-3000:] + result.stderr[-3000:]
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example(name, api, user, request, tmp_path):
    path = EXAMPLES / name
    if path.suffix in SPECS:
        run_spec(path, api, request)
    elif path.suffix in (".py", ".sh"):
        run_program(path, user, request, tmp_path)
    else:
        pytest.fail(f"no way to run {name}: see docs/examples/README.md")


def test_the_examples_include_a_spec_a_client_program_and_a_shell_script():
    suffixes = {Path(name).suffix for name in EXAMPLE_FILES}
    assert {".yaml", ".py", ".sh"} <= suffixes


# --------------------------------------------------------------------------------------
# Pages show code only by including examples

RUNNABLE = {"yaml", "yml", "json", "python", "py", "bash", "sh", "shell"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*\{?\s*\.?(?P<lang>[\w+-]*)")
INCLUDE = re.compile(r'^\s*-{1,2}8<-{1,2}\s+"(?P<path>[^"]+)"\s*$')


def fenced_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """``(line number, language, lines)`` of each fenced code block."""
    blocks, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, start, body = opening["fence"], index, []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        blocks.append((start + 1, opening["lang"].lower(), body))
        index += 1
    return blocks


def snippet_path(line: str) -> Path | None:
    """The file a snippets include line names (without a ``:lines`` or ``:section`` suffix)."""
    match = INCLUDE.match(line)
    if not match:
        return None
    path = ROOT / match["path"]
    return path if path.exists() else ROOT / match["path"].split(":")[0]


def page_problems(text: str) -> list[str]:
    problems = []
    for line_number, language, body in fenced_blocks(text):
        written = [line for line in body if line.strip() and snippet_path(line) is None]
        if language in RUNNABLE and written:
            problems.append(
                f"line {line_number}: a {language} block with code in it; put the code in "
                "docs/examples/ and include it"
            )
    for line_number, line in enumerate(text.splitlines(), 1):
        path = snippet_path(line)
        if path is not None and not path.is_file():
            problems.append(f"line {line_number}: the include {line.strip()} names no file")
    return problems


HAND_WRITTEN = sorted(
    str(path.relative_to(DOCS))
    for path in DOCS.rglob("*.md")
    if not path.is_relative_to(DOCS / "reference")
)


@pytest.mark.unit
@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_pages_show_code_only_through_example_includes(name):
    assert page_problems((DOCS / name).read_text()) == []


@pytest.mark.unit
def test_the_page_check_finds_written_code_and_includes_of_missing_files():
    page = "\n".join(
        [
            "# A page",
            "```yaml",
            '--8<-- "docs/examples/ref-greet.yaml"',
            "```",
            "```python",
            "print('written in the page')",
            "```",
            "!!! note",
            '    ```bash title="run it"',
            '    --8<-- "docs/examples/no-such-example.sh"',
            "    ```",
            "```text",
            "free-form sample output",
            "```",
            "```mermaid",
            "graph LR; a --> b",
            "```",
        ]
    )
    assert page_problems(page) == [
        "line 5: a python block with code in it; put the code in docs/examples/ and include it",
        'line 10: the include --8<-- "docs/examples/no-such-example.sh" names no file',
    ]
