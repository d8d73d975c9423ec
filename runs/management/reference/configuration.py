"""``settings.md`` and ``cli.md``: the knobs and environment variables, and the ``trellis``
command."""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runs.engine.secrets import ENV_PREFIX
from runs.rules.config import KNOBS, Knob
from trellis_client import cli

from . import text
from .markdown import (
    ROOT,
    ReferenceGap,
    code,
    codes,
    environ_reads,
    literal,
    page,
    python_sources,
    require,
    table,
)

SETTINGS_SOURCE = ROOT / "orchestration" / "settings.py"

PARSERS = {
    "env_str": "text",
    "env_bool": "boolean (1/0, true/false, yes/no, on/off)",
    "env_int": "integer",
    "env_float": "number",
    "env_list": "comma-separated list",
    "env_limits": "`queue=N,…`",
    "env_rate": "rate (`<n>/<unit>` or `off`)",
    "env_choice": "one of {choices}",
}


def _knob_parser(knob: Knob) -> str:
    """What ``orchestration.settings.knob`` reads a knob's variable as (same order of tests)."""
    for kind, parser in (
        (bool, "env_bool"),
        (int, "env_int"),
        (float, "env_float"),
        (list, "env_list"),
    ):
        if isinstance(knob.default, kind):
            return parser
    return "env_str"


def environment_reads(source: str) -> dict[str, dict[str, Any]]:
    """Every variable ``source`` (orchestration/settings.py) reads with ``knob(NAME)`` or an
    ``env_*(NAME, default, …)`` helper: how, its default expression and its minimum."""
    reads: dict[str, dict[str, Any]] = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        helper = node.func.id
        if not (helper == "knob" or helper.startswith("env_")) or not node.args:
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        if helper != "knob" and helper not in PARSERS:
            raise ReferenceGap(f"settings: no description of the parser {helper}")
        extra = {kw.arg: ast.unparse(kw.value) for kw in node.keywords}
        reads[first.value] = {
            "helper": helper,
            "default": ast.unparse(node.args[1]) if len(node.args) > 1 else None,
            "choices": ast.literal_eval(node.args[2]) if helper == "env_choice" else None,
            "minimum": extra.get("minimum"),
        }
    return reads


def _parsed(read: Mapping[str, Any], knob: Knob | None) -> str:
    helper = read["helper"] if read["helper"] != "knob" else _knob_parser(knob)  # type: ignore[arg-type]
    choices = codes(read["choices"] or ())
    return PARSERS[helper].format(choices=choices)


def _env_default(read: Mapping[str, Any]) -> str:
    if read["default"] is None:
        return "unset"
    try:
        return literal(ast.literal_eval(read["default"]))
    except ValueError:
        return code(read["default"])


def _differs(read: Mapping[str, Any], knob: Knob) -> bool:
    """Whether the standalone stack's default (an expression) is not the knob's own."""
    if read["default"] is None:
        return False
    try:
        return ast.literal_eval(read["default"]) != knob.default
    except ValueError:
        return True


def settings_page(
    knobs: Mapping[str, Knob] = KNOBS,
    settings_source: str | None = None,
    other_sources: Iterable[str] | None = None,
) -> str:
    """``knobs``: the table (default: runs.rules.config's); ``settings_source``: the text of
    orchestration/settings.py; ``other_sources``: the code whose ``environ.get`` reads count
    (default: runs/)."""
    if settings_source is None:
        settings_source = SETTINGS_SOURCE.read_text()
    if other_sources is None:
        other_sources = [source for _path, source in python_sources(ROOT / "runs")]
    reads = environment_reads(settings_source)
    knob_rows = []
    for name, knob in knobs.items():
        read = reads.get(name)
        if read is None:
            env = "— (a Django setting only)"
        else:
            env = _parsed(read, knob)
            if read["helper"] != "knob" and _differs(read, knob):
                env += f", default {_env_default(read)}"
        minimum = " " if knob.minimum is None else f"{knob.minimum:g}"
        knob_rows.append([code(name), literal(knob.default), minimum, knob.help, env])
    others = {name: read for name, read in reads.items() if name not in knobs}
    extra = [n for n in environ_reads(other_sources) if n not in knobs]
    require("environment variables", [*others, *extra, f"{ENV_PREFIX}<NAME>"], text.ENVIRONMENT)
    env_rows = [
        [
            code(name),
            _parsed(read, None),
            _env_default(read),
            f"≥ {read['minimum']}" if read["minimum"] else " ",
            text.ENVIRONMENT[name],
        ]
        for name, read in sorted(others.items())
    ]
    env_rows += [
        [code(name), "text", "unset", " ", text.ENVIRONMENT[name]]
        for name in sorted([*extra, f"{ENV_PREFIX}<NAME>"])
    ]
    return page(
        "Settings",
        "Every `TRELLIS_…` knob is a Django setting with the default below: a host project sets "
        "it in its settings (`manage.py check` refuses a value under the minimum), and the "
        "standalone stack reads it from the environment variable of the same name, parsed "
        "strictly (a bad value stops start-up naming the variable).",
        "## Knobs\n\n"
        + table(
            ["setting", "default", "minimum", "meaning", "environment (standalone)"], knob_rows
        ),
        "## Other environment variables of the standalone stack\n\n"
        + table(["variable", "read as", "default", "minimum", "meaning"], env_rows),
    )


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def _argument(action: argparse.Action) -> str:
    """An argument as a usage line writes it."""
    if not action.option_strings:
        name = action.metavar or action.dest
        return {"+": f"{name}…", "*": f"[{name}…]", "?": f"[{name}]"}.get(action.nargs, name)
    flag = action.option_strings[-1]
    if action.nargs == 0:
        shown = flag
    else:
        shown = f"{flag} {action.metavar or action.dest.upper()}"
    if action.required:
        return shown
    return f"[{shown}]…" if isinstance(action, argparse._AppendAction) else f"[{shown}]"


def _own_actions(parser: argparse.ArgumentParser, shared: set[str]) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
        and not set(a.option_strings) & shared
    ]


def _argument_rows(actions: list[argparse.Action]) -> list[list[str]]:
    rows = []
    for action in actions:
        default = action.default
        shown = " " if default in (None, False, argparse.SUPPRESS) else literal(default)
        rows.append(
            [code(_argument(action).strip("[]…") or action.dest), action.help or " ", shown]
        )
    return rows


def _returned_values(value: ast.expr) -> list[ast.expr]:
    """The expressions a return statement may give back (both branches of ``a if c else b``)."""
    if isinstance(value, ast.IfExp):
        return [*_returned_values(value.body), *_returned_values(value.orelse)]
    return [value]


def cli_exit_statuses(source: str) -> dict[str, int]:
    """The statuses ``trellis`` returns: the module's int constants that its functions return,
    and int literals returned as they are."""
    returned: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Return) or node.value is None:
            continue
        for value in _returned_values(node.value):
            if isinstance(value, ast.Name) and isinstance(getattr(cli, value.id, None), int):
                returned[value.id] = getattr(cli, value.id)
            elif isinstance(value, ast.Constant) and type(value.value) is int:
                returned[str(value.value)] = value.value
    return returned


def _sentence(words: str) -> str:
    return f"{words[:1].upper()}{words[1:]}." if words else ""


def cli_page(parser: argparse.ArgumentParser | None = None) -> str:
    parser = parser or cli.build_parser()
    folder = Path(cli.__file__).parent
    sources = [path.read_text() for path in sorted(folder.glob("*.py"))]
    environment = environ_reads(sources)
    require("trellis environment variables", environment, text.CLI_ENVIRONMENT)
    statuses = cli_exit_statuses(Path(cli.__file__).read_text())
    require("trellis exit statuses", statuses, text.CLI_EXIT_STATUSES)
    shared = {flag for action in _own_actions(parser, set()) for flag in action.option_strings}
    top = _own_actions(parser, set())
    sections = []
    for group, group_parser in _subcommands(parser).items():
        helps = _helps(group_parser)
        for name, command in _subcommands(group_parser).items():
            actions = _own_actions(command, shared)
            usage = " ".join(["trellis", group, name, *(_argument(a) for a in actions)])
            lines = [
                f"### `trellis {group} {name}`",
                "",
                _sentence(helps.get(name, "")),
                "",
                f"Usage: `{usage}`",
            ]
            if actions:
                lines += ["", table(["argument", "meaning", "default"], _argument_rows(actions))]
            sections.append("\n".join(lines))
    status_rows = sorted(
        ([str(value), text.CLI_EXIT_STATUSES[name]] for name, value in statuses.items()),
        key=lambda row: int(row[0]),
    )
    return page(
        "The trellis command",
        f"{parser.description} `trellis --help` and `trellis <group> <command> --help` say the "
        "same. Install Trellis, or only its `trellis_client` package (httpx, httpx-sse and "
        "rich; never Django).",
        "## Options of every command\n\nGiven before or after the command (after it, they win).\n\n"
        + table(["option", "meaning", "default"], _argument_rows(top)),
        "## Commands\n\n" + "\n\n".join(sections),
        "## Environment\n\nWhere and who: `--url` / `--token`, else `--profile` (or "
        "`TRELLIS_PROFILE`), else `TRELLIS_URL` / `TRELLIS_TOKEN`, else the default profile.\n\n"
        + table(
            ["variable", "meaning"],
            [[code(name), text.CLI_ENVIRONMENT[name]] for name in environment],
        ),
        "## Exit statuses\n\n" + table(["status", "meaning"], status_rows),
    )
