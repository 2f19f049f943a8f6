"""The mapping's templates: the Jinja sandbox they run in, the checks made at load, one render helper.

Templates (summary, description, comment, remote link, any ``template =`` field) are Jinja2,
rendered in an immutable sandbox with no globals, no loader and no ``_private`` attribute access.
The rule for names that are not there:

* Top-level names other than ``nc`` (and ``comment`` in the comment template) are mistakes
  and are rejected at load, as are ``nc.<key>`` / ``comment.<key>`` lookups of keys that are
  not documented (``nc.titel``). Payload keys beyond the documented ones are declared with
  ``extra_nc_keys``. This is checked on the template's syntax tree, so every branch is covered.
* A documented key that a record does not carry is normal (thin events carry only ncId,
  eventType and timestamp): it is undefined, which renders as "", is false in ``{% if %}``,
  iterates as empty, chains (``nc.fields["Root cause"]``) and works with ``default``. A null
  renders as "" too. Doing arithmetic or comparisons on it fails, so at load every template is
  also rendered against a full sample record and a thin one: a template that would crash a sync
  on a thin event is rejected up front. Anything that still fails at render time raises
  ``MappingError`` naming the key.

Payload values are data: they are inserted into the output, never parsed as templates.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import ChainableUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from connector.jira.field_shapes import ShapeError, shape_scalar
from connector.mapping.rules import Mapping, MappingError, suggest

__all__ = ["check_template", "render_template"]

_DICT_METHODS = frozenset({"get", "items", "keys", "values"})


class _MissingIsEmpty(ChainableUndefined):
    """Missing keys render as ""; an undefined top-level name still fails (see module docstring)."""

    __slots__ = ()

    def __str__(self) -> str:
        if self._undefined_obj is missing:
            self._fail_with_undefined_error()
        return ""


class _Sandbox(ImmutableSandboxedEnvironment):
    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # Jinja's default returns an undefined that fails only if printed; raise right away so an
        # escape attempt can never pass silently (e.g. as the test of an {% if %}).
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} is not allowed")


def _date_filter(value: Any) -> str:
    """``{{ nc.dueAt | date }}``: an RFC 3339 date-time as YYYY-MM-DD; other text unchanged."""
    if isinstance(value, Undefined) or value is None:
        return ""
    try:
        return str(shape_scalar("date", value))
    except ShapeError:
        return str(value)


_ENV = _Sandbox(undefined=_MissingIsEmpty, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                finalize=lambda value: "" if value is None else value)
_ENV.globals.clear()  # no range/cycler/joiner/namespace/lipsum: nothing to reach through
_ENV.filters["date"] = _date_filter


class _AnyLabel(dict[str, Any]):
    """Sample Qualio form fields: any label has a value, since labels are the user's own."""

    def __missing__(self, key: str) -> str:
        return "sample value"


def _samples(extra_nc: frozenset[str]) -> list[dict[str, Any]]:
    comment = {"id": "c-1", "author": "dana@example.com", "createdAt": "2025-01-05T10:15:32Z", "body": "Sample."}
    full: dict[str, Any] = {key: "sample" for key in extra_nc} | {
        "ncId": "NC-2025-001", "eventType": "nc.updated", "timestamp": "2025-01-05T10:15:32Z",
        "title": "Sample title", "description": "Sample description.\nSecond line.", "status": "open",
        "severity": "major", "owner": "owner@example.com", "dueAt": "2025-02-15T00:00:00Z",
        "url": "https://app.qualio.com/quality-events/events/1", "risk": "medium", "tags": ["sample"],
        "fields": _AnyLabel({"Sample field": "sample value"}), "changedFields": ["title"], "comment": comment}
    thin = {"ncId": "NC-2025-001", "eventType": "nc.updated", "timestamp": "2025-01-05T10:15:32Z"}
    return [{"nc": full, "comment": comment}, {"nc": thin, "comment": {}}]


def _static_problems(tree: nodes.Template, keys: dict[str, frozenset[str]]) -> list[str]:
    """Mistakes visible in the syntax tree: imports, unknown names and keys, private attributes."""
    problems = [f"templates cannot use {{% {type(node).__name__.lower()} %}}"
                for node in tree.find_all((nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends))]
    for name in sorted(meta.find_undeclared_variables(tree) - set(keys)):
        problems.append(f"unknown name {name!r} (templates see only {', '.join(sorted(keys))})")
    lookups: list[tuple[nodes.Node | None, Any]] = []  # (what is looked into, the constant key)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Call)):
        if isinstance(node, nodes.Getattr):
            lookups.append((node.node, node.attr))
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            lookups.append((node.node, node.arg.value))
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            if isinstance(node.args[0], nodes.Const):
                lookups.append((None, node.args[0].value))
        elif (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) and node.node.attr == "get"
              and node.args and isinstance(node.args[0], nodes.Const)):
            lookups.append((node.node.node, node.args[0].value))
    for owner, attr in lookups:
        if not isinstance(attr, str):
            continue
        if attr.startswith("_"):
            problems.append(f"access to {attr!r} is not allowed")
        elif (isinstance(owner, nodes.Name) and owner.name in keys
              and attr not in keys[owner.name] | _DICT_METHODS):
            problems.append(f"unknown key {owner.name}.{attr}{suggest(attr, keys[owner.name])}")
    return list(dict.fromkeys(problems))


def check_template(source: str, keys: dict[str, frozenset[str]], extra_nc: frozenset[str]
                   ) -> tuple[Template | None, list[str]]:
    """Compile, check the syntax tree, then render against a full and a thin sample.

    keys: the top-level names the template sees, each with the keys it may look up; extra_nc: the
    file's extra_nc_keys (given values in the full sample). Returns the compiled template and no
    problems, or None and the problems found at the first stage that failed.
    """
    try:
        tree = _ENV.parse(source)
        compiled = _ENV.from_string(tree)
    except TemplateSyntaxError as exc:
        return None, [f"template syntax error on line {exc.lineno}: {exc.message}"]
    static = _static_problems(tree, keys)
    if static:
        return None, static
    for sample, kind in zip(_samples(extra_nc), ("full", "thin"), strict=True):
        try:
            compiled.render({name: sample[name] for name in keys})
        except Exception as exc:  # user code: report whatever it raised
            return None, [f"fails on a {kind} sample record: {type(exc).__name__}: {exc}"]
    return compiled, []


def render_template(mapping: Mapping, key: str, context: dict[str, Any]) -> str:
    """The mapping's template at key (as compiled at load) rendered with context."""
    try:
        return mapping.templates[key].render(context)
    except Exception as exc:  # a template is user code: any failure is a mapping problem
        raise MappingError(mapping.path, [f"{key}: cannot render: {type(exc).__name__}: {exc}"]) from exc
