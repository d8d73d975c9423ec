"""A python function: register it in an installed app's handlers.py (or workflows.py).

The `python` handler calls only functions registered with @python_function, by name; a spec
never names an import path. The function's type hints become the schema of the node's
`kwargs`, checked when the spec is submitted.
"""

from handlers.registry import Context, HandlerError, python_function


@python_function  # registered as "slugify"; @python_function("name") picks another name
def slugify(text: str, sep: str = "-") -> str:
    """Called as slugify(**kwargs) with the node's rendered kwargs."""
    return sep.join(text.lower().split())


@python_function
def reserve(ctx: Context, sku: str, qty: int = 1) -> dict:
    """A first parameter named `ctx` receives the node's context."""
    if qty > 100:
        raise HandlerError(f"cannot reserve {qty} of {sku}", retryable=False)  # fails the node
    ctx.log(f"reserving {qty} x {sku} for run {ctx.run_id}")
    return {"sku": sku, "qty": qty, "attempt": ctx.attempt}  # output: any JSON value


# A node that calls it (YAML):
#   - id: slug
#     handler: python
#     config: {function: slugify, kwargs: {text: "{{ inputs.title }}"}}

if __name__ == "__main__":
    print(slugify("Hello Trellis World"))  # hello-trellis-world
    ctx = Context(run_id="r1", node_id="reserve", attempt=1, inputs={}, upstream={})
    print(reserve(ctx, "TEA-42", qty=3))  # {'sku': 'TEA-42', 'qty': 3, 'attempt': 1}
