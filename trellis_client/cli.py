"""The ``trellis`` command: Trellis's REST API from a shell (DESIGN §16).

Exit statuses: 0 success (a followed run COMPLETED); 1 a followed run FAILED or was CANCELLED,
or ``workflow validate`` found problems; 2 usage, configuration, authentication, network or
API errors, with the API's sentence on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import config
from .client import Client
from .errors import ApiError, AuthError, Conflict, TrellisError
from .view import FollowView, Screen, event_line, show_run

OK, RUN_FAILED, ERROR = 0, 1, 2


class UsageError(TrellisError):
    """A command line the command cannot use (exit 2)."""


def emit_json(value: Any) -> None:
    print(json.dumps(value, default=str, ensure_ascii=False), flush=True)


def parse_json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}") from None


def parse_inputs(pairs: Sequence[str], inputs_json: str | None, schema: Any) -> dict[str, Any]:
    """``--inputs-json`` then each ``--input KEY=VALUE`` (VALUE read as JSON when it is JSON,
    unless the workflow's ``inputs`` schema declares KEY a string)."""
    inputs = parse_json(inputs_json, "--inputs-json") if inputs_json else {}
    if not isinstance(inputs, dict):
        raise UsageError("--inputs-json must be a JSON object")
    properties = (schema.get("properties") if isinstance(schema, dict) else None) or {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--input {pair!r}: expected KEY=VALUE")
        declared = properties.get(key.strip())
        as_text = isinstance(declared, dict) and declared.get("type") == "string"
        try:
            inputs[key.strip()] = raw if as_text else json.loads(raw)
        except ValueError:
            inputs[key.strip()] = raw
    return inputs


def spec_file(name: str) -> Path:
    path = Path(name)
    if not path.is_file():
        raise UsageError(f"{name}: no such file")
    return path


# --------------------------------------------------------------------------------------
# Commands: each takes the parsed arguments, a client and the screen; returns the exit status


def workflow_push(args, client: Client, screen: Screen) -> int:
    results = [client.push_workflow(spec_file(name)) for name in args.files]
    if args.json:
        emit_json([result.raw for result in results])
    for name, result in zip(args.files, results, strict=True):
        if not args.json:
            change = "created" if result.created else "unchanged"
            screen.line(f"{result.name} v{result.version} {change} ({name})")
    return OK


def workflow_list(args, client: Client, screen: Screen) -> int:
    workflows = client.list_workflows()
    if args.json:
        emit_json([workflow.raw for workflow in workflows])
        return OK
    rows = [[w.name, w.latest_version, w.owner, w.updated_at and w.updated_at.isoformat()]
            for w in workflows]  # fmt: skip
    screen.table(["name", "version", "owner", "updated"], rows)
    return OK


def workflow_validate(args, client: Client, screen: Screen) -> int:
    result = client.validate_workflow(spec_file(args.file))
    if args.json:
        emit_json(result.raw)
    elif result.valid:
        layers = " -> ".join("[" + ", ".join(layer) + "]" for layer in result.plan)
        screen.line(f"{args.file}: valid; plan: {layers}")
    else:
        for error in result.errors:
            screen.line(f"{args.file}: {error.path}: {error.message}")
        screen.line(f"{args.file}: invalid ({len(result.errors)} problem(s))")
    return OK if result.valid else RUN_FAILED


def run_start(args, client: Client, screen: Screen) -> int:
    schema = None
    if args.input:  # KEY=VALUE pairs are read by the workflow's input schema
        schema = (client.get_workflow(args.name).spec or {}).get("inputs")
    inputs = parse_inputs(args.input or [], args.inputs_json, schema)
    options = {"version": args.version, "session": args.session}
    run = client.start_run(args.name, inputs, **{k: v for k, v in options.items() if v})
    if args.json:
        emit_json(run.raw)
    else:
        screen.line(f"started run {run.id} ({run.workflow} v{run.version}, {run.status})")
    return follow(args, client, screen, run.id) if args.follow else OK


def run_list(args, client: Client, screen: Screen) -> int:
    filters = {
        "status": args.status,
        "workflow": args.workflow,
        "session": args.session,
        "created_after": args.created_after,
        "needs_input": True if args.needs_input else None,
    }
    runs = client.list_runs(**filters, limit=args.limit)
    if args.json:
        emit_json([run.raw for run in runs])
        return OK
    rows = [[r.id, r.workflow, r.version, r.status, r.created_at and r.created_at.isoformat()]
            for r in runs]  # fmt: skip
    screen.table(["id", "workflow", "version", "status", "created"], rows)
    return OK


def run_show(args, client: Client, screen: Screen) -> int:
    run = client.get_run(args.id)
    if args.json:
        emit_json(run.raw)
    else:
        show_run(screen, run)
    return OK


def run_control(args, client: Client, screen: Screen) -> int:
    action = {"pause": client.pause_run, "resume": client.resume_run,
              "cancel": client.cancel_run, "retry": client.retry_run}[args.command]  # fmt: skip
    run = action(args.id)
    if args.json:
        emit_json(run.raw)
    else:
        screen.line(f"run {run.id}: {run.status}")
    return OK


def run_node_action(args, client: Client, screen: Screen) -> int:
    """``trellis run clear|mark|skip ID NODE``: the run's and the node's state after."""
    if args.command == "clear":
        run = client.clear_node(args.id, args.node, downstream=not args.only_this)
    elif args.command == "skip":
        run = client.skip_node(args.id, args.node)
    elif args.failed is not None:
        run = client.mark_node(args.id, args.node, "FAILED", reason=args.failed)
    else:
        output = parse_json(args.output, "--output") if args.output is not None else None
        run = client.mark_node(args.id, args.node, "COMPLETED", output=output)
    if args.json:
        emit_json(run.raw)
    else:
        state = next((node.state for node in run.nodes if node.id == args.node), "?")
        screen.line(f"run {run.id}: {run.status}; node {args.node}: {state}")
    return OK


def run_events(args, client: Client, screen: Screen) -> int:
    if args.follow:
        return follow(args, client, screen, args.id, after=args.after)
    events = client.events(args.id, after=args.after)
    if args.json:
        emit_json([event.raw for event in events])
    for event in [] if args.json else events:
        screen.line(event_line(event))
    return OK


def run_send_event(args, client: Client, screen: Screen) -> int:
    answer = client.send_event(args.id, args.node, parse_json(args.data, "--data"))
    if args.json:
        emit_json(answer)
    else:
        screen.line(f"node {answer.get('node')}: {answer.get('state')}")
    return OK


def run_reject(args, client: Client, screen: Screen) -> int:
    answer = client.reject_event(args.id, args.node, args.reason)
    if args.json:
        emit_json(answer)
    else:
        screen.line(f"node {answer.get('node')}: {answer.get('state')} (rejected)")
    return OK


def follow(args, client: Client, screen: Screen, run_id: str, after: int = 0) -> int:
    """Stream the run until it is finished; the exit status says how it ended."""
    run = client.get_run(run_id)
    if args.json:  # one JSON object a line: each event, then the finished run
        for event in client.follow(run_id, after=after):
            emit_json(event.raw)
    else:
        with FollowView(screen, run) as view:
            for event in client.follow(run_id, after=after):
                view.apply(event)
    run = client.get_run(run_id)
    if args.json:
        emit_json(run.raw)
    else:
        show_run(screen, run)
    return OK if run.status == "COMPLETED" else RUN_FAILED


def profile_save(args, client: None, screen: Screen) -> int:
    url = args.url or os.environ.get("TRELLIS_URL")
    if not url:
        raise UsageError("profile save needs --url (or TRELLIS_URL)")
    token = args.token or os.environ.get("TRELLIS_TOKEN")
    path = config.save_profile(args.name, url, token, make_default=args.default)
    if args.json:
        emit_json({"profile": args.name, "url": url.rstrip("/"), "path": str(path)})
    else:
        screen.line(f"profile {args.name} saved in {path}")
    return OK


def profile_list(args, client: None, screen: Screen) -> int:
    data = config.load()
    shown = {
        name: {"url": p.get("url"), "default": name == data.get("default")}
        for name, p in data["profiles"].items()
    }  # fmt: skip  (tokens are never shown)
    if args.json:
        emit_json(shown)
    else:
        rows = [[name, p["url"], "*" if p["default"] else ""] for name, p in shown.items()]
        screen.table(["profile", "url", "default"], rows)
    return OK


def profile_remove(args, client: None, screen: Screen) -> int:
    config.remove_profile(args.name)
    if not args.json:
        screen.line(f"profile {args.name} removed")
    return OK


# --------------------------------------------------------------------------------------
# The command line


def _connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--url/--token/--profile/--json, accepted before and after the subcommand (given
    after it, a subcommand's value wins; left out, it leaves the top level's alone)."""
    default = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("--url", help="server URL (TRELLIS_URL)", **default)
    parser.add_argument("--token", help="API token (TRELLIS_TOKEN)", **default)
    parser.add_argument("--profile", help="a saved profile (TRELLIS_PROFILE)", **default)
    parser.add_argument("--json", action="store_true", help="machine-readable output", **default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trellis", description="Trellis's REST API from a shell.")
    _connection_options(parser, top=True)
    groups = parser.add_subparsers(dest="group", required=True, metavar="{workflow,run,profile}")
    commands: dict[str, Any] = {}

    def command(group, name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        if group not in commands:
            sub = groups.add_parser(group, help=f"{group} commands")
            commands[group] = sub.add_subparsers(dest="command", required=True)
        sub = commands[group].add_parser(name, help=help_text, description=help_text)
        _connection_options(sub, top=False)
        sub.set_defaults(handler=handler)
        return sub

    command("workflow", "push", workflow_push, "create workflows or add versions").add_argument(
        "files", nargs="+", metavar="FILE", help="JSON or YAML spec"
    )
    command("workflow", "list", workflow_list, "list workflows")
    command("workflow", "validate", workflow_validate, "check a spec (dry run)").add_argument(
        "file", metavar="FILE"
    )
    start = command("run", "start", run_start, "start a run of the workflow NAME")
    start.add_argument("name", metavar="NAME")
    start.add_argument("--input", action="append", metavar="KEY=VALUE", help="one input")
    start.add_argument("--inputs-json", metavar="JSON", help="the inputs as a JSON object")
    start.add_argument("--version", type=int, help="a version (default: the latest)")
    start.add_argument("--session", help="start it in this session")
    start.add_argument("--follow", action="store_true", help="stream the run until it ends")
    listing = command("run", "list", run_list, "list runs, newest first")
    listing.add_argument("--status")
    listing.add_argument("--workflow")
    listing.add_argument("--session")
    listing.add_argument("--created-after", metavar="ISO8601")
    listing.add_argument(
        "--needs-input", action="store_true", help="only runs waiting for a person"
    )
    listing.add_argument("--limit", type=int, default=50)
    command("run", "show", run_show, "a run with its nodes").add_argument("id", metavar="ID")
    for action in ("pause", "resume", "cancel", "retry"):
        command("run", action, run_control, f"{action} a run").add_argument("id", metavar="ID")
    clear = command("run", "clear", run_node_action, "run a finished node (and below) again")
    clear.add_argument("--only-this", action="store_true", help="not the nodes below it")
    mark = command("run", "mark", run_node_action, "set a node COMPLETED or FAILED by hand")
    marked = mark.add_mutually_exclusive_group()
    marked.add_argument("--output", metavar="JSON", help="COMPLETED with this output")
    marked.add_argument("--failed", metavar="REASON", help="FAILED with this reason")
    skip = command("run", "skip", run_node_action, "set a node SKIPPED")
    for sub in (clear, mark, skip):
        sub.add_argument("id", metavar="ID")
        sub.add_argument("node", metavar="NODE")
    events = command("run", "events", run_events, "a run's events")
    events.add_argument("id", metavar="ID")
    events.add_argument("--after", type=int, default=0, metavar="EVENT_ID")
    events.add_argument("--follow", action="store_true", help="stream until the run ends")
    send = command("run", "send-event", run_send_event, "send data to a waiting node")
    send.add_argument("id", metavar="ID")
    send.add_argument("node", metavar="NODE")
    send.add_argument("--data", required=True, metavar="JSON")
    reject = command("run", "reject", run_reject, "reject a waiting node: it fails with a reason")
    reject.add_argument("id", metavar="ID")
    reject.add_argument("node", metavar="NODE")
    reject.add_argument("--reason", required=True, metavar="TEXT", help="why (the node's error)")
    save = command("profile", "save", profile_save, "save --url and --token as a profile")
    save.add_argument("name", metavar="NAME")
    save.add_argument("--default", action="store_true", help="make it the default profile")
    command("profile", "list", profile_list, "list saved profiles")
    command("profile", "remove", profile_remove, "remove a profile").add_argument("name")
    return parser


def report(error: Exception) -> None:
    """An error on stderr: the API's sentence first, then each path and message."""
    if isinstance(error, AuthError) and error.status == 401:
        print(f"trellis: authentication failed: {error.message} (HTTP 401; check "
              "TRELLIS_TOKEN, --token or the profile)", file=sys.stderr)  # fmt: skip
    elif isinstance(error, Conflict) and error.current is not None:
        print(f"trellis: {error.message} (HTTP 409; current: {error.current})", file=sys.stderr)
    elif isinstance(error, ApiError):
        print(f"trellis: {error.message} (HTTP {error.status})", file=sys.stderr)
    else:
        print(f"trellis: {error}", file=sys.stderr)
    for detail in getattr(error, "errors", []):
        print(f"  {detail.path}: {detail.message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status."""
    args = build_parser().parse_args(argv)
    screen = Screen()
    try:
        if args.group == "profile":
            return args.handler(args, None, screen)
        with Client(args.url, args.token, profile=args.profile) as client:
            return args.handler(args, client, screen)
    except (TrellisError, OSError) as error:  # ApiError, ConnectionFailed, ConfigError ...
        report(error)
        return ERROR
    except KeyboardInterrupt:
        return 130
