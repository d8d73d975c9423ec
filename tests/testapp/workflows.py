"""A workflow written in Python and its functions (autodiscovered by the runs app, so the
worker subprocesses register the functions too). Its YAML twin is in tests/test_authoring.py.
"""

from __future__ import annotations

from typing import Any

from handlers.registry import Context
from runs.authoring import Workflow, python_function


@python_function
def stock_gap(sku: str, on_hand: int, wanted: int = 10) -> dict[str, Any]:
    """How many of ``sku`` are missing to reach ``wanted`` (no ``ctx``: called with kwargs)."""
    return {"sku": sku, "missing": max(0, wanted - on_hand)}


@python_function(name="place_order")
def create_order(ctx: Context, sku: str, qty: int = 1) -> dict[str, Any]:
    """An order for ``qty`` of ``sku``, stamped with the node that placed it."""
    return {"sku": sku, "qty": qty, "node": ctx.node_id}


@python_function()
def label(word: str, position: int) -> str:
    """``"<position>:<word>"``."""
    return f"{position}:{word}"


restock = Workflow(
    "py-restock",
    description="Restock a SKU (written in Python)",
    inputs={
        "type": "object",
        "properties": {
            "sku": {"type": "string"},
            "on_hand": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}, "default": []},
        },
        "required": ["sku", "on_hand"],
    },
    defaults={"retries": 1},
)
gap = restock.call(stock_gap, sku=restock.inputs.sku, on_hand=restock.inputs.on_hand)
order = restock.call(
    create_order,
    sku=restock.inputs.sku,
    qty=gap.output.missing,
    when="{{ stock_gap.output.missing > 0 }}",  # a template of its own: still a dependency
)
labels = restock.call(
    label, id="labels", map=restock.inputs.tags, word=restock.item, position=restock.index
)
restock.output(
    value={
        "order": order.output,
        "labels": labels.output,
        "note": f"restocked {restock.inputs.sku}",
    }
)
