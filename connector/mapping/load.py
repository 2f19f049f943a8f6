"""Loading a mapping file: reading the TOML, validating every key, compiling its templates.

A mapping is a TOML file (the shipped one is ``mappings/default.toml``; every key is documented
there and in ``mappings/example-rich.toml``). ``load_mapping`` parses and validates it and
raises one ``MappingError`` listing every problem, each naming the file and the key. Templates
are checked and compiled by ``connector.mapping.templates``; map targets, defaults and static
values are checked against the field's shape here, so a bad file fails at load, not at sync.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Template

from connector.jira.field_shapes import DECLARABLE_TYPES, SYSTEM_FIELDS, ShapeError, declared_info, shape
from connector.jira.workflow import is_category, parse_target
from connector.mapping.rules import (
    COMMENT_KEYS,
    DEFAULT_COMMENT,
    DEFAULT_LINK_TITLE,
    DEFAULT_MARKER,
    JIRA_DEFAULT_PRIORITIES,
    JIRA_DEFAULT_STATUSES,
    NC_KEYS,
    SCHEMA_VERSION,
    Mapping,
    MappingError,
    Rule,
    key_path,
    suggest,
)
from connector.mapping.templates import check_template

__all__ = ["default_mapping_path", "load_mapping"]

_TOP_KEYS = ("schema_version", "extra_nc_keys", "extra_comment_keys", "issue", "fields", "status", "comment",
             "remote_link")
_ISSUE_KEYS = ("project", "issue_type", "marker_label")
_RULE_KEYS = ("value", "template", "from", "map", "default", "allowed", "type")
_STATUS_KEYS = ("from", "map", "default", "allowed", "resolution")
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_MARKER = re.compile(r"^[A-Za-z0-9_.:-]*\{nc_id\}[A-Za-z0-9_.:-]*$")
_PLAIN = (str, int, float, bool, date)


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
            self.problem(key_path(key, unknown), f"unknown key{suggest(unknown, known)} (known: {', '.join(known)})")

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
        self.problem(key_path(key, name), f"expected a string, got {type(value).__name__}")
        return default

    def strings(self, data: dict[str, Any], name: str, key: str) -> tuple[str, ...]:
        value = data.get(name, [])
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        self.problem(key_path(key, name), "expected a list of strings")
        return ()

    def plain(self, key: str, value: Any) -> None:
        if not _is_plain(value):
            self.problem(key, "expected a string, number, boolean, date or a list of those")

    def template(self, key: str, source: str, names: tuple[str, ...] = ("nc",)) -> None:
        """Check and compile a template that sees names; keep it if it passes, else note why not."""
        keys = {"nc": self.nc_keys, "comment": self.comment_keys}
        compiled, problems = check_template(source, {name: keys[name] for name in names}, self.nc_keys - NC_KEYS)
        for text in problems:
            self.problem(key, text)
        if compiled is not None:
            self.templates[key] = compiled

    def rule(self, table: dict[str, Any], name: str, key: str, known: tuple[str, ...],
             default_source: str = "", default_allowed: tuple[str, ...] = ()) -> Rule:
        self.unknown_keys(table, known, key)
        sources = [source for source in ("value", "template", "from") if source in table]
        if len(sources) > 1:
            self.problem(key, f"set only one of value, template or from (found {', '.join(sources)})")
        elif not sources and not default_source:
            self.problem(key, "needs one of value, template or from")
        value_map = self.table(table, "map", key_path(key, "map"))
        if value_map and "value" in table:
            self.problem(key_path(key, "map"), "a map needs a template or from to map")
        for part in ("value", "default"):
            self.plain(key_path(key, part), table.get(part, ""))
        for nc_value, target in value_map.items():
            self.plain(key_path(key, "map", nc_value), target)
        source = self.text(table, "from", key, default_source)
        head = source.split(".", 1)[0]
        if source and head not in self.nc_keys:
            self.problem(key_path(key, "from"), f"unknown NC key {head!r}{suggest(head, self.nc_keys)}")
        declared = self.text(table, "type", key)
        if declared and declared not in DECLARABLE_TYPES:
            self.problem(key_path(key, "type"), f"unknown type {declared!r}{suggest(declared, DECLARABLE_TYPES)}")
        default = table.get("default")
        rule = Rule(name=name, key=key, value=table.get("value"), template=self.text(table, "template", key),
                    source=source, value_map=value_map, default=None if default == "" else default,
                    allowed=self.strings(table, "allowed", key) or default_allowed, type=declared)
        if rule.template:
            self.template(key_path(key, "template"), rule.template)
        self.check_targets(rule)
        return rule

    def check_targets(self, rule: Rule) -> None:
        """Map targets, default and static value must be allowed and fit the field's type."""
        targets = [(key_path(rule.key, "map", k), v) for k, v in rule.value_map.items()]
        targets += [(key_path(rule.key, part), getattr(rule, part)) for part in ("default", "value")
                    if getattr(rule, part) is not None]
        info = declared_info(rule.name, rule.type) if rule.type else SYSTEM_FIELDS.get(rule.name)
        for key, target in targets:
            for item in target if isinstance(target, list) else [target]:
                if rule.key == "status" and is_category(str(item)):
                    self.category(key, str(item))
                elif rule.allowed and item not in rule.allowed:
                    allowed = key_path(rule.key, "allowed")
                    self.problem(key, f"unknown target {item!r}{suggest(str(item), rule.allowed)} (allowed: "
                                      f"{', '.join(rule.allowed)}; declare {allowed} to use others)")
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
            key = key_path("fields", name)
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

    def category(self, key: str, target: str) -> None:
        try:
            parse_target(target)
        except ValueError as exc:
            self.problem(key, str(exc))

    def status(self, data: dict[str, Any]) -> tuple[Rule | None, dict[str, str]]:
        """The status rule, and the resolution to set per target (e.g. {"category:done": "Fixed"})."""
        if "status" not in data:
            return None, {}
        table = self.table(data, "status", "status", _STATUS_KEYS)
        resolutions = self.table(table, "resolution", "status.resolution")
        rule = self.rule({k: v for k, v in table.items() if k != "resolution"}, "status", "status", _STATUS_KEYS,
                         "status", JIRA_DEFAULT_STATUSES)
        targets = {str(v) for v in rule.value_map.values()} | {str(rule.default)} | {str(rule.value)}
        for target, resolution in resolutions.items():
            key = key_path("status", "resolution", target)
            if not isinstance(resolution, str) or not resolution.strip():
                self.problem(key, "must be the name of a resolution, e.g. \"Fixed\"")
            elif target not in targets and not rule.template:
                self.problem(key, f"{target!r} is not a target of status.map or status.default"
                                  f"{suggest(target, targets - {'None'})}")
        return rule, {target: str(resolution).strip() for target, resolution in resolutions.items()}


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
    rules, (status, resolutions) = loader.fields(data), loader.status(data)
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
                   status=status, resolutions=resolutions, comment_template=comment, remote_link_url=link_url,
                   remote_link_title=link_title, nc_keys=loader.nc_keys, comment_keys=loader.comment_keys,
                   templates=loader.templates)


def default_mapping_path() -> Path:
    """The shipped default: the wheel's packaged copy, else the repository's mappings/ folder."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_mappings" / "default.toml"
    return packaged if packaged.exists() else package.parent / "mappings" / "default.toml"

