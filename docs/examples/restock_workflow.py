"""A workflow written in Python: put it in an installed app's workflows.py.

It compiles to the same spec document as one posted as YAML or JSON.
"""

import json

from runs.authoring import Workflow, python_function


@python_function  # also @python_function() or (name="...")
def create_order(sku: str, qty: int = 1) -> dict:  # `ctx` as first parameter when wanted
    return {"sku": sku, "qty": qty}


wf = Workflow("restock", inputs={"type": "object", "properties": {"sku": {"type": "string"}}})
stock = wf.http("check_stock", url="https://stock.example.com/{{ inputs.sku }}")
order = wf.call(create_order, sku=wf.inputs.sku, qty=stock.output.data.missing)  # id create_order
wf.output(value=order.output)

if __name__ == "__main__":
    spec = wf.to_spec()
    # create_order reads check_stock's output, so it depends on it.
    assert spec["dag"]["nodes"][1]["dependencies"] == ["check_stock"]
    print(json.dumps(spec, indent=2))
