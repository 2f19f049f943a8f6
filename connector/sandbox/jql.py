"""The JQL subset's syntax: the searchable fields, the tokenizer and a recursive-descent parser to a `Query`.

Clauses `field op value` joined by AND / OR / NOT (also && and ||) and parentheses, then ORDER BY.
What a parsed query matches is decided in `connector.sandbox.search`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.sandbox.errors import JiraError, jql_error
from connector.sandbox.issues import Issue, issue_number

EQ_OPS = frozenset({"=", "!=", "in", "not in", "is", "is not"})
TEXT_OPS = frozenset({"~", "!~", "is", "is not"})
TIME_OPS = frozenset({"=", "!=", ">", ">=", "<", "<=", "is", "is not"})
_TOKEN = re.compile(
    r"""\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(!=|!~|>=|<=|=|~|>|<|&&|\|\|)|([(),])"""
    r"""|([^\s"'(),=!~<>&|;]+))"""
)
_SYMBOLS = {"&&": "AND", "||": "OR"}


@dataclass(frozen=True)
class JqlField:
    """A searchable field: `attr` is its key in the stored fields, `domain` how values resolve."""

    name: str
    attr: str
    domain: str
    operators: frozenset[str]


def _jql_fields() -> dict[str, JqlField]:
    table = [
        (("project",), JqlField("project", "project", "project", EQ_OPS)),
        (("key", "issuekey", "id"), JqlField("key", "key", "key", EQ_OPS)),
        (("labels", "label"), JqlField("labels", "labels", "label", EQ_OPS)),
        (("status",), JqlField("status", "status", "status", EQ_OPS)),
        (("issuetype", "type"), JqlField("issuetype", "issuetype", "issuetype", EQ_OPS)),
        (("priority",), JqlField("priority", "priority", "priority", EQ_OPS)),
        (("resolution",), JqlField("resolution", "resolution", "resolution", EQ_OPS)),
        (("assignee",), JqlField("assignee", "assignee", "user", EQ_OPS)),
        (("reporter",), JqlField("reporter", "reporter", "user", EQ_OPS)),
        (("component", "components"), JqlField("component", "components", "component", EQ_OPS)),
        (("summary",), JqlField("summary", "summary", "text", TEXT_OPS)),
        (("description",), JqlField("description", "description", "text", TEXT_OPS)),
        (("text",), JqlField("text", "text", "text", TEXT_OPS)),
        (("severity", "cf[10010]"), JqlField("Severity", "customfield_10010", "option", EQ_OPS)),
        (("nc link", "cf[10011]"), JqlField("NC Link", "customfield_10011", "exact", EQ_OPS)),
        (("root cause", "cf[10012]"), JqlField("Root cause", "customfield_10012", "text", TEXT_OPS)),
        (("created", "createddate"), JqlField("created", "created", "time", TIME_OPS)),
        (("updated", "updateddate"), JqlField("updated", "updated", "time", TIME_OPS)),
    ]
    return {alias: jf for aliases, jf in table for alias in aliases}


JQL_FIELDS = _jql_fields()
TEXT_ATTRS = ("summary", "description", "customfield_10012")
SORT_KEYS: dict[str, Callable[[Issue], Any]] = {
    "key": issue_number, "issuekey": issue_number, "id": issue_number,
    "created": lambda i: i.fields["created"], "updated": lambda i: i.fields["updated"],
    "priority": lambda i: int(i.fields["priority"]), "summary": lambda i: i.fields["summary"].lower(),
}


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False

    @property
    def keyword(self) -> str:
        return "" if self.quoted else _SYMBOLS.get(self.text, self.text.upper())


@dataclass(frozen=True)
class Clause:
    """`field op values`; `targets`/`threshold` are the values resolved against the sandbox's data."""

    field: JqlField
    op: str
    values: tuple[str, ...]
    targets: frozenset[str] = frozenset()
    threshold: float | None = None


@dataclass(frozen=True)
class BoolNode:
    op: str  # "and" | "or" | "not"
    children: tuple[Node, ...]


Node = Clause | BoolNode


@dataclass(frozen=True)
class Query:
    where: Node | None
    order: tuple[tuple[str, bool], ...]  # (sort key, descending)


def tokenize(jql: str) -> list[Token]:
    text, pos, tokens = jql.strip(), 0, []
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            pos += len(text[pos:]) - len(text[pos:].lstrip())
            raise jql_error(f"Error in the JQL Query: The character '{text[pos]}' is a reserved JQL character. "
                            f"(line 1, character {pos + 1})")
        pos = match.end()
        dq, sq, op, punct, word = match.groups()
        quoted = dq if dq is not None else sq
        if quoted is not None:
            tokens.append(Token(re.sub(r"\\(.)", r"\1", quoted), quoted=True))
        else:
            tokens.append(Token(op or punct or word))
    return tokens


class JqlParser:
    """Recursive descent over: expr := term (OR term)*; term := factor (AND factor)*;
    factor := NOT factor | ( expr ) | field op value(s); then an optional ORDER BY list."""

    def __init__(self, jql: str) -> None:
        self.tokens = tokenize(jql)
        self.pos = 0

    def parse(self) -> Query:
        where = None if self._peek() in ("", "ORDER") else self._expr()
        order = self._order_by() if self._peek() == "ORDER" else ()
        if self.pos < len(self.tokens):
            raise self._error(f"Expecting either 'OR' or 'AND' but got '{self.tokens[self.pos].text}'.")
        return Query(where, order)

    def _peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.tokens[index].keyword if index < len(self.tokens) else ""

    def _take(self) -> Token:
        if self.pos >= len(self.tokens):
            raise self._error("Unexpected end of query.")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _expect(self, text: str) -> None:
        token = self._take()
        if token.keyword != text.upper():
            raise self._error(f"Expecting '{text}' but got '{token.text}'.")

    def _error(self, detail: str) -> JiraError:
        return jql_error(f"Error in the JQL Query: {detail}")

    def _expr(self) -> Node:
        return self._chain("OR", "or", self._term)

    def _term(self) -> Node:
        return self._chain("AND", "and", self._factor)

    def _chain(self, keyword: str, op: str, part: Callable[[], Node]) -> Node:
        nodes = [part()]
        while self._peek() == keyword:
            self._take()
            nodes.append(part())
        return nodes[0] if len(nodes) == 1 else BoolNode(op, tuple(nodes))

    def _factor(self) -> Node:
        if self._peek() == "NOT":
            self._take()
            return BoolNode("not", (self._factor(),))
        if self._peek() == "(":
            self._take()
            node = self._expr()
            self._expect(")")
            return node
        return self._clause()

    def _clause(self) -> Clause:
        token = self._take()
        if token.text in "(),=" and not token.quoted:
            raise self._error(f"Expecting a field name but got '{token.text}'.")
        jf = JQL_FIELDS.get(token.text.lower())
        if jf is None:
            raise jql_error(f"Field '{token.text}' does not exist or you do not have permission to view it.")
        op = self._operator()
        if op not in jf.operators:
            raise jql_error(f"The operator '{op}' is not supported by the '{jf.name}' field.")
        return Clause(jf, op, self._operands(op))

    def _operator(self) -> str:
        token = self._take()
        word = token.keyword
        if word == "NOT":
            self._expect("IN")
            return "not in"
        if word == "IS":
            if self._peek() == "NOT":
                self._take()
                return "is not"
            return "is"
        if word == "IN":
            return "in"
        if not token.quoted and token.text in ("=", "!=", "~", "!~", ">", ">=", "<", "<="):
            return token.text
        raise self._error(f"Expecting operator but got '{token.text}'.")

    def _operands(self, op: str) -> tuple[str, ...]:
        if op in ("is", "is not"):
            token = self._take()
            if token.keyword not in ("EMPTY", "NULL"):
                raise self._error(f"Expecting 'EMPTY' or 'NULL' but got '{token.text}'.")
            return ()
        if op not in ("in", "not in"):
            return (self._value(),)
        self._expect("(")
        values = [self._value()]
        while self._peek() == ",":
            self._take()
            values.append(self._value())
        self._expect(")")
        return tuple(values)

    def _value(self) -> str:
        token = self._take()
        if token.quoted:
            return token.text
        if token.text in "(),":
            raise self._error(f"Expecting a value but got '{token.text}'.")
        if self._peek() == "(" and self._peek(1) == ")":
            self.pos += 2
            return token.text + "()"
        return token.text

    def _order_by(self) -> tuple[tuple[str, bool], ...]:
        self._take()
        self._expect("BY")
        order = [self._sort_key()]
        while self._peek() == ",":
            self._take()
            order.append(self._sort_key())
        return tuple(order)

    def _sort_key(self) -> tuple[str, bool]:
        name = self._take().text.lower()
        if name not in SORT_KEYS:
            if name in JQL_FIELDS:
                raise jql_error(f"Field '{name}' does not support sorting.")
            raise jql_error(f"Field '{name}' does not exist or you do not have permission to view it.")
        descending = False
        if self._peek() in ("ASC", "DESC"):
            descending = self._take().keyword == "DESC"
        return name, descending


def parse_jql(jql: str) -> Query:
    return JqlParser(jql).parse()
