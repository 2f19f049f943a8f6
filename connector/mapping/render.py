"""Rendering an NC record with a loaded mapping (pure): Jira fields, target status, comments, link, labels.

Value rules (``from`` + ``map``) never let missing data overwrite Jira: a key the record does not
carry leaves the field out (and the status alone); a rule's ``default`` stands in only for a value
that is present but unmapped or unusable. Every value is put in the Jira field's shape and cut to
Jira's limits. Also the identities sync matches on: an NC comment's key and the NC's marker label.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from connector.jira.field_shapes import (
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
    single_line,
)
from connector.jira.workflow import StatusTarget, parse_target
from connector.mapping.rules import Mapping, MappingError, Resolver, Rule, key_path
from connector.mapping.templates import render_template

__all__ = ["comment_key", "marker_label", "remote_link", "render_comment", "render_fields", "target_status"]

log = logging.getLogger(__name__)

_CUSTOM_ID = re.compile(r"^customfield_\d+$")
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
        raw: Any = render_template(mapping, key_path(rule.key, "template"), {"nc": nc}).strip()
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
    lookup = resolver.user if resolver else None
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


def target_status(mapping: Mapping, nc: dict[str, Any]) -> StatusTarget | None:
    """Where the NC's status sends the issue (a status or a category, with its resolution); None leaves the
    issue's status alone, and so does a template that renders an unknown category (logged)."""
    if mapping.status is None:
        return None
    value = _plain_value(mapping, mapping.status, nc)
    if _blank(value):
        return None
    try:
        return parse_target(str(value), mapping.resolutions.get(str(value), ""))
    except ValueError as exc:
        log.warning("mapping: status: %s; leaving the status alone", exc)
        return None


def render_comment(mapping: Mapping, nc: dict[str, Any], comment: dict[str, Any]) -> str:
    """The Jira comment text for an NC comment ("" only when the template and the body are blank)."""
    text = render_template(mapping, "comment.template", {"nc": nc, "comment": comment}).strip()
    return cut(clean_text(text or str(comment.get("body") or "").strip()), TEXT_LIMIT)


# comment_links.comment_key is String(64); the key also ends each posted comment as a marker line.
COMMENT_KEY_MAX = 64
_HASHED_KEY = re.compile(r"h:[0-9a-f]{40}")


def comment_key(comment: dict[str, Any]) -> str:
    """The comment's id; without one, sha256 of author, createdAt and body (so a re-send matches).

    An id longer than 64 characters, or not printable (a newline would break the marker line), becomes
    "h:" + 40 hex digits of its SHA-256, so it fits and two such ids never share a key (cut to 64 they
    could); so does an id already of that form, which no other id can then take. Every other id is kept
    as it is: comments already posted are found by their key.
    """
    ident = comment.get("id")
    if ident is not None and str(ident).strip():
        key = str(ident).strip()
        if len(key) <= COMMENT_KEY_MAX and key.isprintable() and not _HASHED_KEY.fullmatch(key):
            return key
        return "h:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    # A separator, so ("ab", "c") and ("a", "bc") cannot collide.
    parts = "\x1f".join(str(comment.get(part) or "") for part in ("author", "createdAt", "body"))
    return hashlib.sha256(parts.encode("utf-8")).hexdigest()


def marker_label(mapping: Mapping, nc_id: str) -> str:
    """The label that finds the NC's issue: the marker with {nc_id} filled in, no whitespace."""
    return label(mapping.marker_label.replace("{nc_id}", nc_id.strip()))


def remote_link(mapping: Mapping, nc: dict[str, Any]) -> dict[str, Any] | None:
    """Jira remote-link body back to Qualio; None without an http(s) URL."""
    url = render_template(mapping, "remote_link.url", {"nc": nc}).strip()
    if not _HTTP_URL.match(url):
        return None
    nc_id = _nc_id(nc)
    title = cut(single_line(render_template(mapping, "remote_link.title", {"nc": nc})), SUMMARY_LIMIT, "…")
    return {"globalId": f"qualio-nc:{nc_id}", "object": {"url": url, "title": title or f"Qualio {nc_id}"}}
