"""Search: what a parsed JQL query matches, as the sandbox's lagging search index sees the issues.

`SearchIndex` resolves a query's values against the sandbox's data (strictly: an unknown value is a 400,
as in Jira), then evaluates it against each issue's last version older than `lag` seconds (or its
current state, for `reconcile` ids), and sorts like ORDER BY.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.sandbox.errors import JsonDict, jql_error
from connector.sandbox.issues import Issue, IssueStore, issue_number
from connector.sandbox.jql import SORT_KEYS, TEXT_ATTRS, BoolNode, Clause, JqlField, Node, parse_jql
from connector.sandbox.reference import OPTIONS_BY_DOMAIN, find_named

_PERIOD = re.compile(r"([+-]?)\s*((?:\d+\s*[wdhm]\s*)+)")
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60}


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def text_matches(haystack: str, needle: str) -> bool:
    """Jira-ish `~`: every term of `needle` occurs as a word in `haystack` (a trailing * matches a prefix)."""
    have = words(haystack)
    for term in re.findall(r"[\w*]+", needle.lower()):
        stem = term.rstrip("*")
        if not stem:
            continue
        if not (any(w.startswith(stem) for w in have) if term.endswith("*") else stem in have):
            return False
    return True


def field_text(view: JsonDict, attr: str) -> str:
    if attr == "text":
        return " ".join(str(view.get(a) or "") for a in TEXT_ATTRS)
    return str(view.get(attr) or "")


def clause_matches(clause: Clause, view: JsonDict) -> bool:
    jf, op = clause.field, clause.op
    value = view.get(jf.attr) if jf.attr != "text" else field_text(view, "text")
    if op in ("is", "is not"):
        empty = value in (None, [], "")
        return empty if op == "is" else not empty
    if jf.domain == "text":
        if not value:
            return False
        hit = text_matches(field_text(view, jf.attr), clause.values[0])
        return hit if op == "~" else not hit
    if jf.domain == "time":
        return isinstance(value, int | float) and compare_time(op, float(value), clause.threshold or 0.0)
    present = {stored_form(jf, item) for item in as_list(value)}
    hit = bool(present & clause.targets)
    if op in ("=", "in"):
        return hit
    return bool(present) and not hit  # like Jira, != and NOT IN never match an empty field


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def stored_form(jf: JqlField, item: Any) -> str:
    """How a stored value compares with resolved JQL values (labels case-insensitively, as Jira >= 7.10)."""
    return str(item).lower() if jf.domain == "label" else str(item)


def compare_time(op: str, value: float, threshold: float) -> bool:
    return {
        "=": value == threshold, "!=": value != threshold, ">": value > threshold,
        ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold,
    }[op]


def evaluate(node: Node, view: JsonDict) -> bool:
    if isinstance(node, Clause):
        return clause_matches(node, view)
    if node.op == "not":
        return not evaluate(node.children[0], view)
    results = (evaluate(child, view) for child in node.children)
    return all(results) if node.op == "and" else any(results)


def parse_time(raw: str, now: float, field_name: str) -> float:
    """A JQL date: absolute ('2024-05-01', '2024/05/01 10:30') or relative ('-5d', '-1w 2d', 'now()')."""
    if raw.lower() == "now()":
        return now
    match = _PERIOD.fullmatch(raw.strip())
    if match:
        seconds = sum(int(n) * _SECONDS[u] for n, u in re.findall(r"(\d+)\s*([wdhm])", match.group(2)))
        return now - seconds if match.group(1) == "-" else now + seconds
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise jql_error(f"Date value '{raw}' for field '{field_name}' is invalid. Valid formats include: "
                    "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format "
                    "e.g. '-5d', '4w 2d'.")


class SearchIndex:
    """JQL search over the store's issues; writes reach the index `lag` seconds late (under the store's lock)."""

    def __init__(self, store: IssueStore) -> None:
        self.store = store
        self.reset()

    def reset(self) -> None:
        """Back to the configured search lag."""
        with self.store.lock:
            self.lag = self.store.config.search_lag

    def search(self, jql: str, actor: str, *, reconcile: Iterable[str] = (), strict: bool = True,
               bounded: bool = False) -> list[Issue]:
        """Issues matching `jql` as the (lagging) index sees them; `reconcile` ids are read fresh."""
        query = parse_jql(jql or "")
        store = self.store
        with store.lock:
            store.counters["searches"] += 1
            if bounded and query.where is None:
                raise jql_error("Unbounded JQL queries are not allowed here. "
                                "Please add a search restriction to your query.")
            now = store.clock()
            where = self._resolve(query.where, actor, strict, now) if query.where else None
            fresh = {str(r) for r in reconcile}
            hits = [i for i in store.live() if self._visible(i, where, now, fresh)]
            return [copy.deepcopy(i) for i in sort_issues(hits, query.order)]

    def _visible(self, issue: Issue, where: Node | None, now: float, fresh: set[str]) -> bool:
        view = issue.index_view() if issue.id in fresh else self._indexed(issue, now)
        return view is not None and (where is None or evaluate(where, view))

    def _indexed(self, issue: Issue, now: float) -> JsonDict | None:
        cutoff = now - self.lag
        seen = [view for written, view in issue.versions if written <= cutoff]
        return seen[-1] if seen else None

    def _resolve(self, node: Node, actor: str, strict: bool, now: float) -> Node:
        if isinstance(node, BoolNode):
            return BoolNode(node.op, tuple(self._resolve(c, actor, strict, now) for c in node.children))
        if node.field.domain == "time":
            threshold = parse_time(node.values[0], now, node.field.name) if node.values else None
            return dataclasses.replace(node, threshold=threshold)
        targets = {self._resolve_value(node.field, raw, actor, strict) for raw in node.values}
        return dataclasses.replace(node, targets=frozenset(t for t in targets if t is not None))

    def _resolve_value(self, jf: JqlField, raw: str, actor: str, strict: bool) -> str | None:
        resolved = self._lookup(jf.domain, raw, actor)
        if resolved is None and strict:
            if jf.domain == "key":
                raise jql_error(f"An issue with key '{raw}' does not exist for field 'key'.")
            raise jql_error(f"The value '{raw}' does not exist for the field '{jf.name}'.")
        return resolved

    def _lookup(self, domain: str, raw: str, actor: str) -> str | None:
        """The stored form of JQL value `raw` in `domain`, or None when nothing has that value."""
        if domain == "label":
            return raw.lower()
        if domain in ("exact", "text"):
            return raw
        if domain == "project":
            return self.store.find_project(raw)
        if domain == "key":
            issue = self.store.lookup(raw)
            return issue.key if issue else None
        if domain == "user":
            catalog = self.store.catalog
            user = catalog.user(actor) if raw.lower() == "currentuser()" else catalog.find_user(raw)
            return user.account_id if user else None
        definition = self.store.config.definition
        if domain == "status":
            found = definition.find_status(raw)
            return found.id if found else None
        options = definition.resolutions if domain == "resolution" else OPTIONS_BY_DOMAIN[domain]
        option = find_named(options, raw)
        return option.id if option else None


def sort_issues(issues: list[Issue], order: Sequence[tuple[str, bool]]) -> list[Issue]:
    """Sort like ORDER BY (stable, last key first); without one, newest first."""
    result = sorted(issues, key=issue_number, reverse=True)
    for name, descending in reversed(order):
        result.sort(key=SORT_KEYS[name], reverse=descending)
    return result
