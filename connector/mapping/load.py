"""User-editable mappings: how an NC record becomes Jira fields, status, comments and links (pure).

A mapping is a TOML file (the shipped one is ``mappings/default.toml``; every key is documented
there and in ``mappings/example-rich.toml``). ``load_mapping`` parses and validates it and
raises one ``MappingError`` listing every problem, each naming the file and the key.

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

Value rules (``from`` + ``map``) follow one principle: missing data never overwrites Jira. A key
the record does not carry leaves the field out (and the status alone); ``default`` is only the
fallback for a value that is present but unmapped or unusable (an e-mail with no Jira account).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import ChainableUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from connector.jira.field_shapes import (
    DECLARABLE_TYPES,
    SUMMARY_LIMIT,
    SYSTEM_FIELDS,
    TEXT_LIMIT,
    FieldInfo,
    JiraField,
    ShapeError,
    clean_text,
    cut,
    declared_info,
    label,
    shape,
    shape_scalar,
    single_line,
)

__all__ = ["SCHEMA_VERSION", "FieldInfo", "JiraField", "Mapping", "MappingError", "Resolver", "comment_key",
           "default_mapping_path", "load_mapping", "marker_label", "remote_link", "render_comment",
           "render_fields", "target_status"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
NC_KEYS = frozenset({"ncId", "eventType", "timestamp", "title", "description", "status", "severity", "owner",
                     "dueAt", "url", "risk", "tags", "fields", "changedFields", "comment"})
COMMENT_KEYS = frozenset({"id", "author", "createdAt", "body"})
JIRA_DEFAULT_PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
JIRA_DEFAULT_STATUSES = ("To Do", "In Progress", "Done")
DEFAULT_MARKER = "qualio-nc-{nc_id}"
DEFAULT_COMMENT = ("*{{ comment.author | default('Someone', true) }}* commented in Qualio"
                   "{% if comment.createdAt %} ({{ comment.createdAt }}){% endif %}:\n\n{{ comment.body }}")
DEFAULT_LINK_TITLE = "Qualio {{ nc.ncId }}{% if nc.title %}: {{ nc.title }}{% endif %}"

_TOP_KEYS = ("schema_version", "extra_nc_keys", "extra_comment_keys", "issue", "fields", "status", "comment",
             "remote_link")
_ISSUE_KEYS = ("project", "issue_type", "marker_label")
_RULE_KEYS = ("value", "template", "from", "map", "default", "allowed", "type")
_STATUS_KEYS = ("from", "map", "default", "allowed")
_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_CUSTOM_ID = re.compile(r"^customfield_\d+$")
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_MARKER = re.compile(r"^[A-Za-z0-9_.:-]*\{nc_id\}[A-Za-z0-9_.:-]*$")
_PLAIN = (str, int, float, bool, date)


class MappingError(ValueError):
    """A mapping file is invalid, or a template failed; each problem names the file and the key."""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__("\n".join(f"{path}: {problem}" for problem in problems))
        self.path = path
        self.problems = tuple(problems)


class Resolver(Protocol):
    """The Jira look-ups rendering needs; the sync engine passes a Jira-backed one.

    ``field`` answers a FieldInfo or any object with ``id``, ``schema_type`` and ``items`` (such as
    the Jira gateway's own FieldInfo), or None when Jira has no such field.
    """

    def field(self, name_or_id: str) -> JiraField | None: ...

    def account_id(self, email: str) -> str | None: ...


@dataclass(frozen=True)
class Rule:
    """Where one value comes from: a static value, a template or an NC key, optionally mapped."""

    name: str  # the Jira field as written in the file ("priority", "Severity", "customfield_10010")
    key: str  # where the rule sits in the file, for messages ("fields.priority")
    value: Any = None
    template: str = ""
    source: str = ""
    value_map: dict[str, Any] = field(default_factory=dict)
    default: Any = None
    allowed: tuple[str, ...] = ()
    type: str = ""


@dataclass(frozen=True)
class Mapping:
    """A loaded, validated mapping; templates are compiled once, at load."""

    path: str
    project: str  # "" means use settings.jira_project
    issue_type: str
    marker_label: str  # contains {nc_id}
    fields: tuple[Rule, ...]
    status: Rule | None
    comment_template: str
    remote_link_url: str
    remote_link_title: str
    nc_keys: frozenset[str] = NC_KEYS
    comment_keys: frozenset[str] = COMMENT_KEYS
    templates: dict[str, Template] = field(default_factory=dict, repr=False, compare=False)


# --- the template sandbox ---------------------------------------------------------------------

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
            problems.append(f"unknown key {owner.name}.{attr}{_suggest(attr, keys[owner.name])}")
    return list(dict.fromkeys(problems))


def _render(mapping: Mapping, key: str, context: dict[str, Any]) -> str:
    try:
        return mapping.templates[key].render(context)
    except Exception as exc:  # a template is user code: any failure is a mapping problem
        raise MappingError(mapping.path, [f"{key}: cannot render: {type(exc).__name__}: {exc}"]) from exc


# --- loading and validation -------------------------------------------------------------------

def _key(base: str, *parts: str) -> str:
    """A key path for messages: base (already a path) plus parts, quoted as TOML would need."""
    quoted = [part if _BARE_KEY.match(part) else f'"{part}"' for part in parts]
    return ".".join([base, *quoted] if base else quoted)


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, _PLAIN) for item in value)
    return isinstance(value, _PLAIN)


class _Loader:
    """Builds a Mapping from parsed TOML, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.templates: dict[str, Template] = {}
        self.nc_keys = NC_KEYS
        self.comment_keys = COMMENT_KEYS

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{key}: {text}")

    def unknown_keys(self, table: dict[str, Any], known: tuple[str, ...], key: str) -> None:
        for unknown in sorted(set(table) - set(known)):
            self.problem(_key(key, unknown), f"unknown key{_suggest(unknown, known)} (known: {', '.join(known)})")

    def table(self, data: dict[str, Any], name: str, key: str, known: tuple[str, ...] | None = None
              ) -> dict[str, Any]:
        """data[name] as a table ({} when absent); known=None accepts any keys."""
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.problem(key, f"expected a table, got {type(value).__name__}")
            return {}
        if known is not None:
            self.unknown_keys(value, known, key)
        return value

    def text(self, data: dict[str, Any], name: str, key: str, default: str = "") -> str:
        value = data.get(name, default)
        if isinstance(value, str):
            return value
        self.problem(_key(key, name), f"expected a string, got {type(value).__name__}")
        return default

    def strings(self, data: dict[str, Any], name: str, key: str) -> tuple[str, ...]:
        value = data.get(name, [])
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        self.problem(_key(key, name), "expected a list of strings")
        return ()

    def plain(self, key: str, value: Any) -> None:
        if not _is_plain(value):
            self.problem(key, "expected a string, number, boolean, date or a list of those")

    def template(self, key: str, source: str, names: tuple[str, ...] = ("nc",)) -> None:
        """Compile, check the syntax tree, then render against a full and a thin sample."""
        try:
            tree = _ENV.parse(source)
            compiled = _ENV.from_string(tree)
        except TemplateSyntaxError as exc:
            self.problem(key, f"template syntax error on line {exc.lineno}: {exc.message}")
            return
        keys = {"nc": self.nc_keys, "comment": self.comment_keys}
        static = _static_problems(tree, {name: keys[name] for name in names})
        for text in static:
            self.problem(key, text)
        if static:
            return
        for sample, kind in zip(_samples(self.nc_keys - NC_KEYS), ("full", "thin"), strict=True):
            try:
                compiled.render({name: sample[name] for name in names})
            except Exception as exc:  # user code: report whatever it raised
                self.problem(key, f"fails on a {kind} sample record: {type(exc).__name__}: {exc}")
                return
        self.templates[key] = compiled

    def rule(self, table: dict[str, Any], name: str, key: str, known: tuple[str, ...],
             default_source: str = "", default_allowed: tuple[str, ...] = ()) -> Rule:
        self.unknown_keys(table, known, key)
        sources = [source for source in ("value", "template", "from") if source in table]
        if len(sources) > 1:
            self.problem(key, f"set only one of value, template or from (found {', '.join(sources)})")
        elif not sources and not default_source:
            self.problem(key, "needs one of value, template or from")
        value_map = self.table(table, "map", _key(key, "map"))
        if value_map and "value" in table:
            self.problem(_key(key, "map"), "a map needs a template or from to map")
        for part in ("value", "default"):
            self.plain(_key(key, part), table.get(part, ""))
        for nc_value, target in value_map.items():
            self.plain(_key(key, "map", nc_value), target)
        source = self.text(table, "from", key, default_source)
        head = source.split(".", 1)[0]
        if source and head not in self.nc_keys:
            self.problem(_key(key, "from"), f"unknown NC key {head!r}{_suggest(head, self.nc_keys)}")
        declared = self.text(table, "type", key)
        if declared and declared not in DECLARABLE_TYPES:
            self.problem(_key(key, "type"), f"unknown type {declared!r}{_suggest(declared, DECLARABLE_TYPES)}")
        default = table.get("default")
        rule = Rule(name=name, key=key, value=table.get("value"), template=self.text(table, "template", key),
                    source=source, value_map=value_map, default=None if default == "" else default,
                    allowed=self.strings(table, "allowed", key) or default_allowed, type=declared)
        if rule.template:
            self.template(_key(key, "template"), rule.template)
        self.check_targets(rule)
        return rule

    def check_targets(self, rule: Rule) -> None:
        """Map targets, default and static value must be allowed and fit the field's type."""
        targets = [(_key(rule.key, "map", k), v) for k, v in rule.value_map.items()]
        targets += [(_key(rule.key, part), getattr(rule, part)) for part in ("default", "value")
                    if getattr(rule, part) is not None]
        info = declared_info(rule.name, rule.type) if rule.type else SYSTEM_FIELDS.get(rule.name)
        for key, target in targets:
            for item in target if isinstance(target, list) else [target]:
                if rule.allowed and item not in rule.allowed:
                    self.problem(key, f"unknown target {item!r}{_suggest(str(item), rule.allowed)} (allowed: "
                                      f"{', '.join(rule.allowed)}; declare {_key(rule.key, 'allowed')} to use others)")
            if info and "user" not in (info.schema_type, info.items):  # users need Jira to check
                try:
                    shape(info, target)
                except ShapeError as exc:
                    self.problem(key, f"does not fit a {rule.type or info.schema_type} field: {exc}")

    def issue(self, data: dict[str, Any], project_override: str) -> tuple[str, str, str]:
        issue = self.table(data, "issue", "issue", _ISSUE_KEYS)
        project = project_override.strip() or self.text(issue, "project", "issue").strip()
        if project and not _PROJECT_KEY.match(project):
            self.problem("issue.project", f"{project!r} is not a Jira project key (uppercase, e.g. QA)")
        issue_type = self.text(issue, "issue_type", "issue", "Task").strip()
        if not issue_type:
            self.problem("issue.issue_type", "must not be empty")
        marker = self.text(issue, "marker_label", "issue", DEFAULT_MARKER)
        if not _MARKER.match(marker) or len(marker) > 200:
            self.problem("issue.marker_label", "must contain {nc_id} once, and otherwise only letters, digits "
                                               "and _ . : - (a Jira label has no spaces), at most 200 characters")
        return project, issue_type, marker

    def fields(self, data: dict[str, Any]) -> tuple[Rule, ...]:
        rules: list[Rule] = []
        for name, table in self.table(data, "fields", "fields").items():
            key = _key("fields", name)
            if name in ("project", "issuetype"):
                self.problem(key, "set issue.project / issue.issue_type instead")
            elif not isinstance(table, dict):
                self.problem(key, f"expected a table, got {type(table).__name__}")
            else:
                default_allowed = JIRA_DEFAULT_PRIORITIES if name.lower() == "priority" else ()
                rules.append(self.rule(table, name, key, _RULE_KEYS, default_allowed=default_allowed))
        if not any(rule.name == "summary" for rule in rules):
            self.problem("fields.summary", "required (Jira issues need a summary)")
        return tuple(rules)

    def status(self, data: dict[str, Any]) -> Rule | None:
        if "status" not in data:
            return None
        table = self.table(data, "status", "status", _STATUS_KEYS)
        return self.rule(table, "status", "status", _STATUS_KEYS, "status", JIRA_DEFAULT_STATUSES)


def _read(path: Path, shown: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(shown, [f"cannot read the file: {exc.strerror}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(shown, [f"not valid TOML: {exc}"]) from None


def load_mapping(path: str | Path, project_override: str = "") -> Mapping:
    """Parse and validate a mapping file; a non-empty project_override replaces issue.project."""
    shown = str(path)
    data = _read(Path(path), shown)
    loader = _Loader()
    loader.unknown_keys(data, _TOP_KEYS, "")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        loader.problem("schema_version", f"required, and this connector reads schema_version = {SCHEMA_VERSION}"
                                         f" (got {version!r})")
    loader.nc_keys = NC_KEYS | set(loader.strings(data, "extra_nc_keys", ""))
    loader.comment_keys = COMMENT_KEYS | set(loader.strings(data, "extra_comment_keys", ""))
    project, issue_type, marker = loader.issue(data, project_override)
    rules, status = loader.fields(data), loader.status(data)
    comment_table = loader.table(data, "comment", "comment", ("template",))
    comment = loader.text(comment_table, "template", "comment", DEFAULT_COMMENT)
    loader.template("comment.template", comment, ("nc", "comment"))
    link = loader.table(data, "remote_link", "remote_link", ("url", "title"))
    link_url = loader.text(link, "url", "remote_link", "{{ nc.url }}")
    link_title = loader.text(link, "title", "remote_link", DEFAULT_LINK_TITLE)
    loader.template("remote_link.url", link_url)
    loader.template("remote_link.title", link_title)
    if loader.problems:
        raise MappingError(shown, loader.problems)
    return Mapping(path=shown, project=project, issue_type=issue_type, marker_label=marker, fields=rules,
                   status=status, comment_template=comment, remote_link_url=link_url, remote_link_title=link_title,
                   nc_keys=loader.nc_keys, comment_keys=loader.comment_keys, templates=loader.templates)


def default_mapping_path() -> Path:
    """The shipped default: the wheel's packaged copy, else the repository's mappings/ folder."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_mappings" / "default.toml"
    return packaged if packaged.exists() else package.parent / "mappings" / "default.toml"


# --- rendering --------------------------------------------------------------------------------

_HTTP_URL = re.compile(r"^https?://[^\s/]+\S*$", re.IGNORECASE)


def _nc_id(nc: dict[str, Any]) -> str:
    nc_id = str(nc.get("ncId") or "").strip()
    if not nc_id:
        raise ValueError("the NC record has no ncId")
    return nc_id


def _lookup(nc: dict[str, Any], source: str) -> Any:
    """nc[source]; "fields.<label>" reads a Qualio form field (labels may contain dots)."""
    head, _, rest = source.partition(".")
    value = nc.get(head)
    if rest:
        return value.get(rest) if isinstance(value, dict) else None
    return value


def _blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or value == []


def _map_key(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)  # TOML spells booleans lowercase


def _allowed(rule: Rule, value: Any) -> Any:
    if not rule.allowed or value is None:
        return value
    if all(str(item) in rule.allowed for item in (value if isinstance(value, list) else [value])):
        return value
    log.warning("mapping: %s: %r is not an allowed target; using the default", rule.key, value)
    return rule.default


def _plain_value(mapping: Mapping, rule: Rule, nc: dict[str, Any]) -> Any:
    """The rule's value before shaping; None leaves the field out (missing data never overwrites)."""
    if rule.value is not None:
        return rule.value
    if rule.template:
        raw: Any = _render(mapping, _key(rule.key, "template"), {"nc": nc}).strip()
    else:
        raw = _lookup(nc, rule.source)
    if _blank(raw):
        return None
    if not rule.value_map:
        return _allowed(rule, raw)
    if isinstance(raw, list):
        mapped = [rule.value_map.get(_map_key(item), rule.default) for item in raw]
        return [item for item in mapped if item is not None] or None
    return rule.value_map.get(_map_key(raw), rule.default)


def _field_info(mapping: Mapping, rule: Rule, resolver: Resolver | None) -> JiraField:
    if rule.type and _CUSTOM_ID.match(rule.name):
        return declared_info(rule.name, rule.type)  # id and type both given: no need to ask Jira
    info: JiraField | None = SYSTEM_FIELDS.get(rule.name)
    if info is None and resolver is not None:
        info = resolver.field(rule.name)
    if info is None and _CUSTOM_ID.match(rule.name):
        info = FieldInfo(rule.name, rule.name, "any")  # type unknown without Jira: value as it is
    if info is None:
        hint = "" if resolver else " (field names need Jira to resolve; or use the customfield_NNNNN id)"
        raise MappingError(mapping.path, [f"{rule.key}: no Jira field named {rule.name!r}{hint}"])
    return declared_info(info.id, rule.type) if rule.type else info


def _shaped(rule: Rule, info: JiraField, raw: Any, resolver: Resolver | None) -> Any:
    """The value in Jira's shape; the default if the value does not fit; None if neither does."""
    lookup = resolver.account_id if resolver else None
    candidates = [raw] + ([rule.default] if rule.default is not None and rule.default != raw else [])
    for candidate in candidates:
        try:
            value = shape(info, candidate, lookup)
        except ShapeError as exc:
            log.warning("mapping: %s: value not usable for a %s field: %s", rule.key, info.schema_type, exc)
            continue
        return cut(clean_text(value), TEXT_LIMIT) if isinstance(value, str) else value
    return None


def render_fields(mapping: Mapping, nc: dict[str, Any], resolver: Resolver | None = None) -> dict[str, Any]:
    """The Jira REST v2 `fields` object for the NC (project and issuetype are for a create only)."""
    if not mapping.project:
        raise MappingError(mapping.path, ["issue.project: no Jira project; set it here or set "
                                          "NC_CONNECTOR_JIRA_PROJECT"])
    fields: dict[str, Any] = {"project": {"key": mapping.project}, "issuetype": {"name": mapping.issue_type}}
    for rule in mapping.fields:
        raw = _plain_value(mapping, rule, nc)
        if rule.name == "summary":
            # Jira needs a summary on one line; a blank one falls back to the NC id.
            summary = single_line(str(raw or "")) or f"Qualio NC {_nc_id(nc)}"
            fields["summary"] = cut(summary, SUMMARY_LIMIT, "…")
            continue
        if raw is None:
            continue
        info = _field_info(mapping, rule, resolver)
        value = _shaped(rule, info, raw, resolver)
        if value is not None and value != "" and value != []:
            fields[info.id] = value
    fields["labels"] = list(dict.fromkeys([*fields.get("labels", []), marker_label(mapping, _nc_id(nc))]))
    return fields


def target_status(mapping: Mapping, nc: dict[str, Any]) -> str | None:
    """The Jira status the NC's status maps to; None leaves the issue's status alone."""
    if mapping.status is None:
        return None
    value = _plain_value(mapping, mapping.status, nc)
    return None if _blank(value) else str(value)


def render_comment(mapping: Mapping, nc: dict[str, Any], comment: dict[str, Any]) -> str:
    """The Jira comment text for an NC comment ("" only when the template and the body are blank)."""
    text = _render(mapping, "comment.template", {"nc": nc, "comment": comment}).strip()
    return cut(clean_text(text or str(comment.get("body") or "").strip()), TEXT_LIMIT)


def comment_key(comment: dict[str, Any]) -> str:
    """The comment's id; without one, sha256 of author, createdAt and body (so a re-send matches)."""
    ident = comment.get("id")
    if ident is not None and str(ident).strip():
        return str(ident).strip()
    # A separator, so ("ab", "c") and ("a", "bc") cannot collide.
    parts = "\x1f".join(str(comment.get(part) or "") for part in ("author", "createdAt", "body"))
    return hashlib.sha256(parts.encode("utf-8")).hexdigest()


def marker_label(mapping: Mapping, nc_id: str) -> str:
    """The label that finds the NC's issue: the marker with {nc_id} filled in, no whitespace."""
    return label(mapping.marker_label.replace("{nc_id}", nc_id.strip()))


def remote_link(mapping: Mapping, nc: dict[str, Any]) -> dict[str, Any] | None:
    """Jira remote-link body back to Qualio; None without an http(s) URL."""
    url = _render(mapping, "remote_link.url", {"nc": nc}).strip()
    if not _HTTP_URL.match(url):
        return None
    nc_id = _nc_id(nc)
    title = cut(single_line(_render(mapping, "remote_link.title", {"nc": nc})), SUMMARY_LIMIT, "…")
    return {"globalId": f"qualio-nc:{nc_id}", "object": {"url": url, "title": title or f"Qualio {nc_id}"}}
