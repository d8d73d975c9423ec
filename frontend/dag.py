"""The DAG picture: nodes placed in columns by topological layer (``spec.layers``), so every
edge reads left to right, ordered within each column to keep edges from crossing.

Big graphs stay small on the page: a layer wider than ``GROUP_OVER`` nodes is drawn as one
group box (its members listed, paged, in the run page's panel), and a graph deeper than
``MAX_COLUMNS`` layers has its layers merged into at most that many group columns. Edges are
drawn once per pair of boxes, so a 1,000-wide fan-out is three boxes and two edges, and the
picture has at most ``MAX_COLUMNS × GROUP_OVER`` boxes whatever the number of nodes.

Pure: takes the layers and the dependencies, returns coordinates and SVG edge paths; the
templates draw them (``frontend/_dag.html``) and the run page's script colours them live.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

NODE_WIDTH = 176
NODE_HEIGHT = 54
COLUMN_GAP = 64
ROW_GAP = 16
PADDING = 12
LABEL_CHARS = 22  # characters of a node id that fit in a box
BAR_INSET = 14
SWEEPS = 4  # barycentre passes (down and up) to reduce crossings
GROUP_OVER = 20  # a layer with more nodes than this is drawn as one group box
MAX_COLUMNS = 60  # deeper graphs have consecutive layers merged into group columns
GROUP_PREFIX = "group:"  # keys of group boxes; node ids cannot contain ":"


@dataclass(frozen=True)
class PlacedNode:
    id: str  # the node id, or ``group:<n>`` for a group box
    handler: str
    layer: int
    x: float
    y: float
    width: float = NODE_WIDTH
    height: float = NODE_HEIGHT
    state: str = ""  # a NodeRun state on the run page, empty on the workflow page
    members: tuple[str, ...] = ()  # a group box's node ids, in layer order

    @property
    def is_group(self) -> bool:
        return bool(self.members)

    @property
    def label(self) -> str:
        """The id (a group: its first and last member), shortened to fit its box."""
        if self.is_group:
            first, last = self.members[0], self.members[-1]
            half = (LABEL_CHARS - 3) // 2
            return f"{_clip(first, half)} … {_clip(last, half)}"
        return _clip(self.id, LABEL_CHARS)

    @property
    def centre_y(self) -> float:
        return self.y + self.height / 2

    @property
    def bar_width(self) -> float:
        """The progress bar's full width inside the box."""
        return self.width - 2 * BAR_INSET

    @property
    def bar_y(self) -> float:
        return self.height - 9


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


@dataclass(frozen=True)
class PlacedEdge:
    source: str  # item keys: a node id or a group's ``group:<n>``
    target: str
    path: str  # an SVG path: a cubic curve from the source's right side to the target's left


@dataclass
class DagLayout:
    nodes: list[PlacedNode] = field(default_factory=list)
    edges: list[PlacedEdge] = field(default_factory=list)
    width: float = 0
    height: float = 0

    @property
    def groups(self) -> list[PlacedNode]:
        return [item for item in self.nodes if item.is_group]

    @property
    def node_count(self) -> int:
        """Nodes of the workflow (group members counted), not boxes."""
        return sum(len(item.members) or 1 for item in self.nodes)


def order_layers(
    layers: Sequence[Sequence[str]], dependencies: Mapping[str, Sequence[str]]
) -> list[list[str]]:
    """Reorder each layer by the mean position of its neighbours (barycentre heuristic),
    sweeping down (by parents) and up (by children). Ties keep document order."""
    ordered = [list(layer) for layer in layers]
    children: dict[str, list[str]] = {node: [] for layer in ordered for node in layer}
    for node, parents in dependencies.items():
        for parent in parents:
            children.setdefault(parent, []).append(node)
    # Kept up to date layer by layer (not rebuilt per layer): linear in the nodes per sweep.
    pos: dict[str, float] = {node: index for layer in ordered for index, node in enumerate(layer)}

    def barycentre(neighbours, index: int, node: str) -> float:
        linked = [pos[n] for n in neighbours.get(node, ()) if n in pos]
        return sum(linked) / len(linked) if linked else float(index)

    def sweep(indices: range, neighbours: Mapping[str, Sequence[str]]) -> None:
        for i in indices:
            keyed = [
                (barycentre(neighbours, index, node), index, node)
                for index, node in enumerate(ordered[i])
            ]
            ordered[i] = [node for _, _, node in sorted(keyed)]
            pos.update((node, index) for index, node in enumerate(ordered[i]))

    for _ in range(SWEEPS):
        sweep(range(1, len(ordered)), dependencies)
        sweep(range(len(ordered) - 2, -1, -1), children)
    return ordered


def columns_of(
    layers: Sequence[Sequence[str]],
    dependencies: Mapping[str, Sequence[str]],
    group_over: int = GROUP_OVER,
    max_columns: int = MAX_COLUMNS,
) -> list[list[str | tuple[str, ...]]]:
    """The boxes of each column: a node id, or a tuple of node ids drawn as one group."""
    if len(layers) > max_columns:
        size = math.ceil(len(layers) / max_columns)
        return [
            [tuple(node for layer in layers[start : start + size] for node in layer)]
            for start in range(0, len(layers), size)
        ]
    narrow = [list(layer) if len(layer) <= group_over else [] for layer in layers]
    ordered = order_layers(narrow, dependencies)
    return [
        list(ordered[depth]) if len(layer) <= group_over else [tuple(layer)]
        for depth, layer in enumerate(layers)
    ]


def layout(
    layers: Sequence[Sequence[str]],
    dependencies: Mapping[str, Sequence[str]],
    handlers: Mapping[str, str],
    *,
    group_over: int = GROUP_OVER,
    max_columns: int = MAX_COLUMNS,
) -> DagLayout:
    """Coordinates for every box (a node or a group of nodes) and a path for every edge
    between two boxes (one per pair, however many node edges it stands for)."""
    columns = columns_of(layers, dependencies, group_over, max_columns)
    if not columns:
        return DagLayout()
    tallest = max(len(column) for column in columns)
    height = tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP + 2 * PADDING
    width = len(columns) * NODE_WIDTH + (len(columns) - 1) * COLUMN_GAP + 2 * PADDING
    placed: dict[str, PlacedNode] = {}
    box_of: dict[str, str] = {}  # node id -> the key of the box it is drawn in
    for depth, column in enumerate(columns):
        top = (height - (len(column) * NODE_HEIGHT + (len(column) - 1) * ROW_GAP)) / 2
        x = PADDING + depth * (NODE_WIDTH + COLUMN_GAP)
        for row, box in enumerate(column):
            y = top + row * (NODE_HEIGHT + ROW_GAP)
            if isinstance(box, tuple):
                key = f"{GROUP_PREFIX}{depth}"
                handler_names = sorted({handlers.get(node, "") for node in box} - {""})
                handler = handler_names[0] if len(handler_names) == 1 else "mixed"
                placed[key] = PlacedNode(key, handler, depth, x, y, members=box)
                box_of.update((node, key) for node in box)
            else:
                placed[box] = PlacedNode(box, handlers.get(box, ""), depth, x, y)
                box_of[box] = box
    pairs: dict[tuple[str, str], None] = {}  # insertion-ordered set
    for node_id, parents in dependencies.items():
        target = box_of.get(node_id)
        for parent in parents:
            source = box_of.get(parent)
            if source is not None and target is not None and source != target:
                pairs[(source, target)] = None
    edges = [
        PlacedEdge(source, target, edge_path(placed[source], placed[target]))
        for source, target in pairs
    ]
    nodes = [placed[box if isinstance(box, str) else box_of[box[0]]] for c in columns for box in c]
    return DagLayout(nodes=nodes, edges=edges, width=width, height=height)


def edge_path(source: PlacedNode, target: PlacedNode) -> str:
    """A smooth curve leaving the source's right side and entering the target's left."""
    x1, y1 = source.x + source.width, source.centre_y
    x2, y2 = target.x, target.centre_y
    bend = max(24.0, (x2 - x1) / 2)
    return (
        f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    )


def layout_for_spec(spec) -> DagLayout:
    """The layout of a parsed ``WorkflowSpec``."""
    return layout(
        spec.layers,
        {node_id: node.dependencies for node_id, node in spec.nodes.items()},
        {node_id: node.handler for node_id, node in spec.nodes.items()},
    )
