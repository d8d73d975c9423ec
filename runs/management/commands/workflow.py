"""``manage.py workflow``: import, sync, list and run workflows from the command line.

    manage.py workflow import examples/hello.json more/*.yaml
    manage.py workflow sync [--check]
    manage.py workflow list
    manage.py workflow run hello --input name=Ada --wait

``import`` validates every file before saving any (all errors at once, each as
``file: path: message``); ``run`` validates inputs against the spec's ``inputs`` schema before
creating anything, and with ``--wait`` follows the run's event log until it finishes.
``sync`` saves every workflow written in Python (the installed apps' ``workflows.py``) as a
version, all or nothing; ``--check`` saves nothing and fails when any differs from the
database's latest version (for CI and deploys).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from runs.authoring import registered_workflows
from runs.models import Run, RunEvent, Workflow, WorkflowVersion
from runs.rules.spec import SpecError, load_spec_text, parse_spec
from runs.rules.states import RUN_FINISHED, RunState
from runs.services.runs import find_version, start_new_run, visible_workflows
from runs.services.workflows import save_workflow, saved_state

SPEC_SUFFIXES = (".json", ".yaml", ".yml")
POLL_INTERVAL = 0.2


# --------------------------------------------------------------------------------------
# Helpers shared with `manage.py up`


def spec_files(paths: list[str | Path]) -> list[Path]:
    """The spec files named by ``paths``; a directory stands for its *.json / *.yaml / *.yml."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in SPEC_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{path}: no such file or directory")
    return files


def read_spec(path: Path) -> dict[str, Any]:
    """Load and validate one spec file. Raises SpecError with every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([{"path": "$", "message": f"cannot read the file: {exc}"}]) from None
    doc = load_spec_text(text)
    parse_spec(doc)  # raises SpecError listing every problem
    return doc


def format_errors(errors: list[dict[str, Any]], prefix: str = "") -> list[str]:
    """``[prefix: ]path: message`` lines for the errors of a SpecError."""
    lead = f"{prefix}: " if prefix else ""
    return [f"{lead}{err.get('path', '$')}: {err.get('message', '')}" for err in errors]


def describe_save(version: WorkflowVersion, created: bool) -> str:
    name = version.workflow.name
    return (
        f"imported {name} v{version.version}"
        if created
        else f"{name} unchanged (v{version.version})"
    )


def python_workflow_docs() -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Every registered Python workflow's document, validated: (valid docs, the invalid
    ones' names with their problem lines)."""
    docs: list[dict[str, Any]] = []
    problems: dict[str, list[str]] = {}
    for workflow in registered_workflows():
        doc = workflow.to_spec()
        try:
            parse_spec(doc)
        except SpecError as exc:
            problems[workflow.name] = format_errors(exc.errors, f"workflow {workflow.name}")
        else:
            docs.append(doc)
    return docs, problems


def describe_sync(version: WorkflowVersion, created: bool) -> str:
    name, number = version.workflow.name, version.version
    if not created:
        return f"{name}: unchanged v{number}"
    return f"{name}: created v1" if number == 1 else f"{name}: new version v{number}"


def resolve_user(username: str | None):
    """The named user, or the first superuser when no name is given."""
    users = get_user_model().objects
    if username:
        try:
            return users.get(username=username)
        except users.model.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
    user = users.filter(is_superuser=True, is_active=True).order_by("pk").first()
    if user is None:
        raise CommandError(
            "no superuser exists: create one (manage.py createsuperuser, or manage.py up) "
            "or pass --user USERNAME"
        )
    return user


def parse_input_pairs(pairs: list[str], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """``k=v`` pairs; a value is JSON when it parses as JSON, otherwise the string itself.

    A property the ``inputs`` schema declares ``"type": "string"`` keeps the raw text, so
    ``--input name=42`` gives ``"42"`` there.
    """
    properties = (schema.get("properties") if isinstance(schema, dict) else None) or {}
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CommandError(f"--input {pair!r}: expected KEY=VALUE")
        prop = properties.get(key)
        if isinstance(prop, dict) and prop.get("type") == "string":
            inputs[key] = raw
            continue
        try:
            inputs[key] = json.loads(raw)
        except ValueError:
            inputs[key] = raw
    return inputs


# --------------------------------------------------------------------------------------
# The command


class Command(BaseCommand):
    help = "Import, list and run workflows."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        imp = actions.add_parser(
            "import",
            help="Validate and save workflow specs (JSON or YAML). Nothing is saved if any is "
            "invalid; an identical spec does not create a version.",
        )
        imp.add_argument("files", nargs="+", metavar="FILE", help="spec files or directories")
        imp.add_argument("--user", help="owner of new workflows (default: the first superuser)")

        sync = actions.add_parser(
            "sync",
            help="Save every workflow written in Python (the installed apps' workflows.py) as "
            "a version; an unchanged one creates nothing. Nothing is saved if any is invalid.",
        )
        sync.add_argument(
            "--check",
            action="store_true",
            help="save nothing; fail when any Python workflow differs from the database",
        )
        sync.add_argument("--user", help="owner of new workflows (default: the first superuser)")

        actions.add_parser("list", help="List workflows with their latest version.")

        run = actions.add_parser("run", help="Start a run of a workflow.")
        run.add_argument("name", metavar="NAME", help="workflow name")
        run.add_argument("--version", type=int, help="version number (default: the latest)")
        run.add_argument(
            "--input",
            dest="input_pairs",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="one run input; VALUE is parsed as JSON when it is valid JSON (unless the inputs "
            "schema says the field is a string), else taken as a string (repeatable; overrides "
            "--inputs-json)",
        )
        run.add_argument("--inputs-json", metavar="JSON", help="run inputs as a JSON object")
        run.add_argument("--wait", action="store_true", help="follow the run until it finishes")
        run.add_argument(
            "--timeout", type=float, metavar="S", help="with --wait: give up after S seconds"
        )
        run.add_argument("--user", help="user the run belongs to (default: the first superuser)")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "import":
            self.import_files(options["files"], options.get("user"))
        elif action == "sync":
            self.sync_python(options.get("user"), check=options["check"])
        elif action == "list":
            self.list_workflows()
        elif action == "run":
            self.run_workflow(options)

    # -- import ------------------------------------------------------------------------

    def import_files(self, paths: list[str], username: str | None) -> None:
        user = resolve_user(username)
        files = spec_files(paths)
        if not files:
            raise CommandError("no spec files (*.json, *.yaml, *.yml) found")
        docs: list[tuple[Path, dict[str, Any]]] = []
        problems: list[str] = []
        for path in files:
            try:
                docs.append((path, read_spec(path)))
            except SpecError as exc:
                problems.extend(format_errors(exc.errors, str(path)))
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError(
                f"invalid workflow spec ({len(problems)} error(s)); nothing imported"
            )
        # All or nothing: one transaction for every file.
        lines = []
        try:
            with transaction.atomic():
                for path, doc in docs:
                    try:
                        version, created = save_workflow(doc, user)
                    except SpecError as exc:
                        for line in format_errors(exc.errors, str(path)):
                            self.stderr.write(line)
                        raise CommandError("invalid workflow spec; nothing imported") from None
                    lines.append(describe_save(version, created))
        except PermissionError as exc:
            raise CommandError(f"{exc}; nothing imported") from None
        for line in lines:
            self.stdout.write(line)

    # -- sync --------------------------------------------------------------------------

    def sync_python(self, username: str | None, *, check: bool) -> None:
        docs, problems = python_workflow_docs()
        for lines in problems.values():
            for line in lines:
                self.stderr.write(line)
        if check:
            self.check_python(docs, invalid=list(problems))
            return
        if problems:
            raise CommandError(f"invalid Python workflow: {', '.join(problems)}; nothing synced")
        if not docs:
            self.stdout.write("no Python workflows (an installed app's workflows.py defines them)")
            return
        user = resolve_user(username)
        try:
            with transaction.atomic():  # all or nothing, as import
                lines = [describe_sync(*save_workflow(doc, user)) for doc in docs]
        except PermissionError as exc:
            raise CommandError(f"{exc}; nothing synced") from None
        for line in lines:
            self.stdout.write(line)

    def check_python(self, docs: list[dict[str, Any]], *, invalid: list[str]) -> None:
        stale = list(invalid)
        for doc in docs:
            number, same = saved_state(doc)
            if same:
                self.stdout.write(f"{doc['name']}: in sync v{number}")
                continue
            stale.append(doc["name"])
            saved = f"differs from v{number}" if number else "not in the database"
            self.stdout.write(f"{doc['name']}: {saved}")
        if stale:
            raise CommandError(
                f"Python workflows differ from the database: {', '.join(stale)} "
                "(run manage.py workflow sync)"
            )

    # -- list --------------------------------------------------------------------------

    def list_workflows(self) -> None:
        workflows = list(Workflow.objects.select_related("owner").order_by("name"))
        if not workflows:
            self.stdout.write("no workflows (import some with: manage.py workflow import FILE)")
            return
        width = max(len("NAME"), *(len(w.name) for w in workflows))
        self.stdout.write(
            f"{'NAME':<{width}}  VERSION  {'OWNER':<16}  UPDATED           DESCRIPTION"
        )
        for wf in workflows:
            updated = timezone.localtime(wf.updated_at).strftime("%Y-%m-%d %H:%M")
            description = " ".join(wf.description.split())
            if len(description) > 60:
                description = description[:57] + "..."
            self.stdout.write(
                f"{wf.name:<{width}}  {'v' + str(wf.latest_version):<7}  "
                f"{wf.owner.get_username():<16}  {updated:<16}  {description}".rstrip()
            )

    # -- run ---------------------------------------------------------------------------

    def run_workflow(self, options: dict[str, Any]) -> None:
        user = resolve_user(options.get("user"))
        name = options["name"]
        try:
            workflow = visible_workflows(user).get(name=name)
        except Workflow.DoesNotExist:
            raise CommandError(
                f"no workflow named {name!r} visible to {user.get_username()} "
                "(see: manage.py workflow list)"
            ) from None
        try:
            version = find_version(workflow, options.get("version"))
        except WorkflowVersion.DoesNotExist:
            raise CommandError(
                f"{name} has no version {options.get('version')} "
                f"(latest is v{workflow.latest_version})"
            ) from None

        inputs: dict[str, Any] = {}
        if options.get("inputs_json"):
            try:
                inputs = json.loads(options["inputs_json"])
            except ValueError as exc:
                raise CommandError(f"--inputs-json is not valid JSON: {exc}") from None
            if not isinstance(inputs, dict):
                raise CommandError("--inputs-json must be a JSON object")
        schema = version.spec.get("inputs") if isinstance(version.spec, dict) else None
        inputs.update(parse_input_pairs(options["input_pairs"], schema))

        try:
            run = start_new_run(version, user, inputs=inputs)
        except SpecError as exc:
            for line in format_errors(exc.errors):
                self.stderr.write(line)
            raise CommandError(
                f"invalid inputs for {name} v{version.version}; no run created"
            ) from None
        self.stdout.write(f"started run {run.pk} ({name} v{version.version})")
        if options["wait"]:
            self.follow(run, options.get("timeout"))

    def follow(self, run: Run, timeout: float | None) -> None:
        """Print every node state change from the run's event log until the run finishes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        states = dict(run.nodes.values_list("node_id", "state"))
        width = max([len("run"), *(len(node_id) for node_id in states)])
        last_event = 0
        try:
            while True:
                events = RunEvent.objects.filter(run_id=run.pk, id__gt=last_event).order_by("id")
                for event in events:
                    last_event = event.id
                    line = self.describe_event(event, states, width)
                    if line:
                        self.stdout.write(line)
                status = Run.objects.values_list("status", flat=True).get(pk=run.pk)
                if status in RUN_FINISHED:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError(
                        f"timed out after {timeout:g} s; run {run.pk} is still {status}",
                        returncode=2,
                    )
                time.sleep(POLL_INTERVAL)
        except KeyboardInterrupt:
            raise CommandError(f"stopped waiting; run {run.pk} goes on", returncode=130) from None
        self.report_final(run)

    @staticmethod
    def describe_event(event: RunEvent, states: dict[str, str], width: int) -> str | None:
        """One ``time  node  FROM -> TO`` line for a status event (None for other kinds)."""
        data = event.data if isinstance(event.data, dict) else {}
        stamp = timezone.localtime(event.ts).strftime("%H:%M:%S.%f")[:-3]
        if event.kind == "node.status":
            target = data.get("state", "?")
            source = data.get("from") or states.get(event.node_id, "?")
            states[event.node_id] = target
            extra = []
            if target == "RUNNING" and data.get("attempt"):
                extra.append(f"attempt {data['attempt']}")
            if data.get("error"):
                extra.append(str(data["error"]))
            if data.get("retry_in") is not None:
                extra.append(f"retry in {data['retry_in']} s")
            tail = f"  ({'; '.join(extra)})" if extra else ""
            return f"{stamp}  {event.node_id:<{width}}  {source} -> {target}{tail}"
        if event.kind == "run.status" and data.get("from"):
            return f"{stamp}  {'run':<{width}}  {data['from']} -> {data.get('status', '?')}"
        return None

    def report_final(self, run: Run) -> None:
        run.refresh_from_db()
        self.stdout.write(f"run {run.pk} {run.status}")
        if run.result is not None:
            self.stdout.write(json.dumps(run.result, indent=2, ensure_ascii=False))
        if run.status != RunState.COMPLETED:
            raise CommandError(f"run {run.status}" + (f": {run.error}" if run.error else ""))
