"""What the ``trellis`` command prints: tables, event lines and the live view of a run.

On a terminal the tables and the live view are drawn with rich; anywhere else (a pipe, a
file, CI logs) the same content is printed as plain lines with no escape codes. ``--json``
output never comes through here: the command prints the API's objects as JSON itself.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .models import Event, Node, Run

STATE_STYLES = {
    "COMPLETED": "green",
    "FAILED": "red",
    "UPSTREAM_FAILED": "red",
    "CANCELLED": "yellow",
    "RUNNING": "cyan",
    "WAITING": "magenta",
    "RETRYING": "yellow",
    "PAUSED": "yellow",
}


def compact(value: Any, width: int = 100) -> str:
    """A value as one line of JSON, cut to ``width`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


class Screen:
    """stdout, as a terminal (rich) or as plain lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.console = Console(file=self.stream, highlight=False) if self.tty else None

    def line(self, text: str = "") -> None:
        if self.console is not None:
            self.console.print(text, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
        if self.console is not None:
            self.console.print(rich_table(headers, cells))
            return
        widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
        for row in [headers, *cells]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
                  file=self.stream)  # fmt: skip
        self.stream.flush()


def rich_table(headers: list[str], rows: list[list[str]]) -> Table:
    """A table of plain text (Text cells: a ``[`` in a name is never read as markup), the
    state column coloured."""
    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    state_column = headers.index("state") if "state" in headers else -1
    for row in rows:
        table.add_row(
            *(
                Text(cell, style=STATE_STYLES.get(cell, "") if i == state_column else "")
                for i, cell in enumerate(row)
            )
        )
    return table


def event_line(event: Event) -> str:
    """One event as a line: ``#id time kind node what-happened``."""
    data = event.data if isinstance(event.data, dict) else {"data": event.data}
    when = event.ts.strftime("%H:%M:%S") if event.ts else "--:--:--"
    if event.kind == "node.status":
        what = f"{data.get('state')} (attempt {data.get('attempt')})"
        if data.get("error"):
            what += f": {compact(data['error'], 80)}"
    elif event.kind == "run.status":
        what = str(data.get("status"))
    elif event.kind == "node.log" and "message" in data:
        what = compact(data["message"])
    else:
        what = compact(data)
    return f"#{event.id} {when} {event.kind} {event.node or '-'} {what}"


# --------------------------------------------------------------------------------------
# Runs and nodes


NODE_HEADERS = ["node", "handler", "state", "attempt", "duration", "error"]


def node_row(node: Node) -> list[Any]:
    error = node.error.get("message") if isinstance(node.error, dict) else node.error
    return [node.id, node.handler, node.state, node.attempt, seconds(node.duration),
            compact(error, 60) if error else ""]  # fmt: skip


def show_run(screen: Screen, run: Run) -> None:
    screen.line(f"run {run.id}  {run.workflow} v{run.version}  {run.status}")
    for label, value in (("created", run.created_at), ("started", run.started_at),
                         ("finished", run.finished_at)):  # fmt: skip
        if value:
            screen.line(f"  {label:<9}{value.isoformat()}")
    if run.error:
        screen.line(f"  error    {compact(run.error)}")
    if run.nodes:
        screen.table(NODE_HEADERS, [node_row(node) for node in run.nodes])
    if run.finished:
        screen.line(f"result: {compact(run.result, 400)}")


class FollowView:
    """The live view of a followed run: its nodes (state, attempt, duration) updated by each
    event, and the events themselves as they arrive. Plain lines when not on a terminal."""

    def __init__(self, screen: Screen, run: Run) -> None:
        self.screen = screen
        self.run = run
        self.nodes = {node.id: node for node in run.nodes}
        self.live: Live | None = None

    def __enter__(self) -> FollowView:
        if self.screen.console is not None:
            self.live = Live(
                self._render(), console=self.screen.console, refresh_per_second=4, transient=True
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(*exc_info)

    def apply(self, event: Event) -> None:
        """Show ``event`` and update the node or run it concerns."""
        data = event.data if isinstance(event.data, dict) else {}
        if event.kind == "node.status" and event.node:
            node = self.nodes.setdefault(event.node, Node(id=event.node))
            node.state = data.get("state", node.state)
            node.attempt = data.get("attempt", node.attempt)
            if node.state == "RUNNING":
                node.started_at, node.finished_at = event.ts, None
            elif node.state in ("COMPLETED", "FAILED", "CANCELLED", "SKIPPED"):
                node.finished_at = event.ts
        elif event.kind == "run.status":
            self.run.status = data.get("status", self.run.status)
        if self.live is not None:  # the table first: printing redraws it under the line
            self.live.update(self._render(), refresh=True)
            self.live.console.print(event_line(event), markup=False, highlight=False)
        else:
            self.screen.line(event_line(event))

    def _render(self) -> Group:
        rows = []
        for node in sorted(self.nodes.values(), key=lambda n: n.id):
            row = node_row(node)
            if node.state == "RUNNING" and node.started_at:
                row[4] = seconds((datetime.now(UTC) - node.started_at).total_seconds())
            rows.append([str(cell) for cell in row[:5]])
        title = f"run {self.run.id}  {self.run.workflow}  {self.run.status}"
        return Group(Text(title), rich_table(NODE_HEADERS[:5], rows))
