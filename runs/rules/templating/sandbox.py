"""The template sandbox: a Jinja2 environment with strict undefined names and size guards.

Also the settings lookups and the per-render time bound (``TRELLIS_MAX_RENDER_SECONDS``)
shared by :mod:`.analysis` and :mod:`.render`.
"""

from __future__ import annotations

import json
import re
import string
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined
from jinja2 import nodes as jnodes
from jinja2.exceptions import SecurityError
from jinja2.filters import do_center, do_format, do_indent, do_join, do_replace
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..config import setting

__all__ = ["JINJA_GLOBALS", "RESERVED_NAMES", "TemplateError", "env"]

#: Names the engine puts in every template scope; node ids may not use them.
RESERVED_NAMES: frozenset[str] = frozenset(
    {"inputs", "params", "run", "session", "item", "index", "nodes", "secrets"}
)

_CACHE_SIZE = 4096  # compiled Jinja templates and expressions


class TemplateError(Exception):
    """A template could not be checked or rendered. ``str(exc)`` is a sentence for users."""

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source


def _max_rendered() -> int:
    return int(setting("TRELLIS_MAX_RENDERED_BYTES"))


# --------------------------------------------------------------------------- time bound

_clock = threading.local()  # .deadline: time.monotonic() after which rendering stops


def _max_seconds() -> float:
    return float(setting("TRELLIS_MAX_RENDER_SECONDS"))


def _check_time() -> None:
    deadline = getattr(_clock, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise SecurityError(
            f"the template took longer than {_max_seconds():g} s to render "
            "(TRELLIS_MAX_RENDER_SECONDS)"
        )


def _guarded_iter(iterable: Any) -> Iterator[Any]:
    """What every ``{% for %}`` loop iterates: the same items, with the clock checked."""
    for count, item in enumerate(iterable):
        if not count & 255:
            _check_time()
        yield item


_ITER_GUARD = "_trellis_loop_items"


# --------------------------------------------------------------------------- environment


def _finalize(value: Any) -> Any:
    """How a value is written into a string template: dicts and lists as JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _too_large(what: str, limit: int) -> SecurityError:
    return SecurityError(f"{what} would be longer than the limit of {limit} characters")


_PRINTF_RE = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str, limit: int) -> None:
    """Refuse ``'%999999999d' % x``-style width bombs."""
    for match in _PRINTF_RE.finditer(fmt):
        for group in match.groups():
            if group == "*" or (group and int(group) > limit):
                raise _too_large("the formatted string", limit)


def _check_format_spec(fmt: str, limit: int) -> None:
    """Refuse ``'{:>999999999}'.format(x)``-style width bombs."""
    for _literal, _field, spec, _conversion in string.Formatter().parse(fmt):
        if spec and ("{" in spec or any(int(n) > limit for n in re.findall(r"\d+", spec))):
            raise _too_large("the formatted string", limit)


def _check_repeat(seq: Any, times: Any, limit: int) -> None:
    if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
        if len(seq) * times > limit:
            raise _too_large("the repeated value", limit)


def _check_width(width: Any, limit: int) -> None:
    if isinstance(width, int) and width > limit:
        raise _too_large("the padded string", limit)


def _check_replace(text: Any, old: Any, new: Any, limit: int) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * (len(new) - len(old)) > limit:
            raise _too_large("the replaced string", limit)


def _check_join(separator: Any, items: Any, limit: int) -> None:
    if isinstance(separator, str) and hasattr(items, "__len__"):
        if len(separator) * len(items) > limit:
            raise _too_large("the joined string", limit)


def _check_str_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Bound the str methods that can build huge strings from small inputs."""
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    owner = getattr(target, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(target, "__name__", "")
    limit = _max_rendered()
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_width(args[0] if args else kwargs.get("width"), limit)
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int) and size * owner.count("\t") > limit:
            raise _too_large("the expanded string", limit)
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1], limit)
    elif name == "join" and args:
        _check_join(owner, args[0], limit)
    elif name in ("format", "format_map"):
        _check_format_spec(owner, limit)


class _SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus JSON-friendly attribute lookup and size guards."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> jnodes.Template:
        # Every loop iterates through _guarded_iter, so that no loop outlives the clock.
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(jnodes.For):
            guard = jnodes.Name(_ITER_GUARD, "load", lineno=loop.lineno)
            loop.iter = jnodes.Call(guard, [loop.iter], [], None, None, lineno=loop.lineno)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        # JSON objects: a key wins over a dict method of the same name (items, keys, ...).
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_time()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _check_time()
        limit = _max_rendered()
        if operator_ == "*":
            _check_repeat(left, right, limit)
            _check_repeat(right, left, limit)
        elif operator_ == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and abs(left) > 1
                and left.bit_length() * right > limit * 8
            ):
                raise _too_large("the power", limit)
        elif operator_ == "%" and isinstance(left, str):
            _check_printf(left, limit)
        return super().call_binop(context, operator_, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        _check_str_method(obj, args, kwargs)
        return super().call(context, obj, *args, **kwargs)


def _install_filter_guards(environment: _SandboxEnvironment) -> None:
    """Wrap the built-in filters that can amplify a small template into a huge string."""

    def center(value: Any, width: int = 80) -> str:
        _check_width(width, _max_rendered())
        return do_center(value, width)

    def indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
        limit = _max_rendered()
        if isinstance(width, int) and width * (str(s).count("\n") + 1) > limit:
            raise _too_large("the indented string", limit)
        if isinstance(width, str) and len(width) * (str(s).count("\n") + 1) > limit:
            raise _too_large("the indented string", limit)
        return do_indent(s, width, first, blank)

    def format_(value: str, *args: Any, **kwargs: Any) -> str:
        _check_printf(str(value), _max_rendered())
        return do_format(value, *args, **kwargs)

    def replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
        _check_replace(str(s), old, new, _max_rendered())
        return do_replace(eval_ctx, s, old, new, count)

    def join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
        if not hasattr(value, "__len__"):
            value = list(value)
        _check_join(d, value, _max_rendered())
        return do_join(eval_ctx, value, d, attribute)

    def tojson(value: Any, indent: int | None = None) -> str:
        # Plain JSON: Jinja's own tojson escapes <, >, & and ' for HTML, which configs and
        # prompts do not want.
        return json.dumps(value, ensure_ascii=False, indent=indent, default=str)

    # Keep Jinja's pass-context markers so the wrappers receive the same arguments.
    for wrapper, original in ((replace, do_replace), (join, do_join)):
        wrapper.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    environment.filters.update(
        {
            "center": center,
            "indent": indent,
            "format": format_,
            "replace": replace,
            "join": join,
            "tojson": tojson,
        }
    )


env = _SandboxEnvironment(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
env.globals.pop("lipsum", None)  # lipsum(n=10**7) is a free CPU burner
_install_filter_guards(env)

#: Names templates may use that Jinja itself provides (range, dict, namespace, ...).
JINJA_GLOBALS: frozenset[str] = frozenset(env.globals)
env.globals[_ITER_GUARD] = _guarded_iter  # not for templates: analyze() refuses the name
