"""A custom handler: a Handler subclass registered by name in an installed app's handlers.py.

Every installed app's handlers.py is imported at start (web and workers), after the
built-in handlers. The config schema is checked when a spec is submitted.
"""

from typing import Any

from handlers.registry import Context, Handler, HandlerError, register


@register("greet")  # the name a spec's `handler:` uses
class Greet(Handler):
    """Greet someone, in one of a few languages."""

    description = "Say hello in a few languages."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "lang": {"enum": ["en", "fr", "de"], "default": "en"},
        },
    }
    words = {"en": "Hello", "fr": "Bonjour", "de": "Hallo"}

    def check_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Checks beyond the schema, at submit: (config key, sentence) problems."""
        if config.get("name") == "nobody":
            return [("name", "greeting nobody is pointless")]
        return []

    def run(self, ctx: Context, config: dict[str, Any]) -> Any:
        """The config arrives rendered; the return value (JSON) is the node's output."""
        if ctx.is_cancelled():
            raise HandlerError("cancelled")
        ctx.progress(0.5, "choosing words")  # a node.progress event, live in the dashboard
        return {"greeting": f"{self.words[config.get('lang', 'en')]}, {config['name']}!"}


# In a spec:
#   - id: hi
#     handler: greet
#     config: {name: "{{ inputs.name }}", lang: fr}

if __name__ == "__main__":
    ctx = Context(run_id="r1", node_id="hi", attempt=1, inputs={}, upstream={})
    print(Greet().run(ctx, {"name": "Ada", "lang": "fr"}))  # {'greeting': 'Bonjour, Ada!'}
    print(Greet().check_config({"name": "nobody"}))
