"""Node templating: a Jinja2 sandbox with strict undefined names (DESIGN.md section 3).

Pure package: no ORM, no broker. It renders node configs, ``when`` and ``map`` templates
against a scope built by :func:`build_scope`, and answers static questions about templates
(syntax, the names and node ids they use) for spec validation.

Rules:

- A string without ``{{`` or ``{%`` is plain text and is returned unchanged.
- A string that is exactly one ``{{ expression }}`` renders to the expression's native value
  (list, dict, number, bool, None); any other template renders to a string, in which dicts
  and lists are written as JSON.
- A missing reference, a sandbox violation or any other failure raises :class:`TemplateError`
  with a sentence naming the problem; a missing value never renders as an empty string.
- Attribute access on a JSON object prefers its keys (``x.output.items`` is the ``items``
  key, not ``dict.items``).

The common templates (``{{ a.output.data }}``, ``{{ nodes['a-b'].output[0] }}`` mixed with
text) take a fast path that resolves the dotted path directly with the sandbox's own
``getattr``/``getitem`` instead of compiling Jinja code, so validating and rendering
thousands of nodes stays cheap. Everything else goes through Jinja, cached by source.

Modules: :mod:`.sandbox` (the environment, its guards and the time bound), :mod:`.analysis`
(the fast-path parser and static questions), :mod:`.render` (scopes and rendering).
"""

from .analysis import (
    TemplateInfo,
    analyze,
    check_syntax,
    is_template,
    names_used,
    node_keys_used,
    referenced_nodes,
    single_expression,
)
from .render import (
    build_scope,
    clear_caches,
    render_bool,
    render_string,
    render_value,
    truthy,
)
from .sandbox import JINJA_GLOBALS, RESERVED_NAMES, TemplateError, env

__all__ = [
    "JINJA_GLOBALS",
    "RESERVED_NAMES",
    "TemplateError",
    "TemplateInfo",
    "analyze",
    "build_scope",
    "check_syntax",
    "clear_caches",
    "env",
    "is_template",
    "names_used",
    "node_keys_used",
    "referenced_nodes",
    "render_bool",
    "render_string",
    "render_value",
    "single_expression",
    "truthy",
]
