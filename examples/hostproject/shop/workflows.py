"""The shop's workflows, written in Python (found by Trellis as admin.py files are)."""

from runs.authoring import Workflow, python_function

from .models import Order


@python_function
def create_order(sku: str, qty: int = 1) -> dict:
    """Order ``qty`` more of ``sku``: a row in the shop's own table."""
    order = Order.objects.create(sku=sku, qty=qty)
    return {"order": order.pk, "sku": order.sku, "qty": order.qty}


restock = Workflow(
    "restock",
    description="Order more of a product.",
    inputs={
        "type": "object",
        "required": ["sku", "qty"],
        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
    },
)
order = restock.call(create_order, sku=restock.inputs.sku, qty=restock.inputs.qty)
restock.output(value=order.output)
