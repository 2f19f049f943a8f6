"""The NC webhook contract: parse and validate a delivery body into an NcEvent (pure).

Qualio publishes no webhook schema; this module is our documented contract (see README):
a JSON object with ``eventType``, ``ncId`` and an RFC 3339 ``timestamp``; every other
field is kept as it came, once the documented ones have the type the sync reads them as.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# Matched with fullmatch, never `$`: `$` also matches before a trailing newline, and "NC-1-2\n" is not
# NC-1-2. The required fields are exact strings, so surrounding whitespace is refused, never stripped:
# stripping would make the stored columns disagree with the payload the sync reads.
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
# Seed style NC-2025-001 and Qualio event codes such as NCR-12.
_NC_ID = re.compile(r"[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)+")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
# The String(64) columns these are stored in (fingerprints, deliveries; tests check the models agree).
NC_ID_MAX = 64
EVENT_TYPE_MAX = 64
MAX_DEPTH = 32
# A number literal of at most this many characters, its exponent within +-MAX_EXPONENT: the canonical
# spelling writes every digit out (1e400 is 401 digits), so this bounds its cost, and int() its 4300-digit
# limit. Every double a JSON library writes fits (1.7976931348623157e+308, 5e-324), and any integer id.
MAX_NUMBER_CHARS = 64
MAX_EXPONENT = 400
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# A payload with nothing but these keys carries no content: only a fetch from Qualio tells what changed.
THIN_KEYS = frozenset({"eventType", "ncId", "timestamp", "changedFields"})


@dataclass(frozen=True)
class FieldError:
    field: str
    problem: str


class PayloadError(ValueError):
    """The body is not a valid NC event; `errors` lists each bad field."""

    def __init__(self, detail: str, errors: tuple[FieldError, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


@dataclass(frozen=True)
class NcEvent:
    event_type: str
    nc_id: str
    timestamp: datetime  # aware, UTC
    payload: dict[str, Any]

    @property
    def is_thin(self) -> bool:
        return set(self.payload) <= THIN_KEYS


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PayloadError(f"duplicate key {key!r} in JSON object")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"{name} is not valid JSON")


def _nesting_guard(body: str) -> None:
    """Reject very deep nesting before json.loads can hit the recursion limit."""
    depth = deepest = 0
    in_string = escaped = False
    for char in body:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1


class _NumberRefused(Exception):
    """Raised by the number hooks; parse_json then parses again to name the numbers' paths (bad input only)."""


@dataclass(frozen=True)
class _Refused:
    """Stands in for a refused number in that second parse."""

    problem: str


def _number_problem(literal: str) -> str | None:
    if len(literal) > MAX_NUMBER_CHARS:
        return f"number longer than {MAX_NUMBER_CHARS} characters"
    if "e" in literal or "E" in literal:  # only an exponent can make a short literal huge
        value = Decimal(literal)
        exponent = value.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -MAX_EXPONENT or value.adjusted() > MAX_EXPONENT:
            return f"number out of range (exponent beyond {MAX_EXPONENT})"
    return None


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _NumberRefused
    return int(literal)


def _parse_float(literal: str) -> Decimal:
    if _number_problem(literal):
        raise _NumberRefused
    return Decimal(literal)


def _mark_number(literal: str) -> Any:
    problem = _number_problem(literal)
    if problem:
        return _Refused(problem)
    return Decimal(literal) if any(c in literal for c in ".eE") else int(literal)


def _refused_numbers(value: Any, path: str) -> Iterator[FieldError]:
    """Each refused number's path: `fields.Lot size`, `tags[2]` (nesting is at most MAX_DEPTH)."""
    if isinstance(value, _Refused):
        yield FieldError(path, value.problem)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _refused_numbers(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _refused_numbers(item, f"{path}[{index}]")


def _loads(text: str, parse_int: Callable[[str], Any], parse_float: Callable[[str], Any]) -> Any:
    try:
        return json.loads(text, parse_float=parse_float, parse_int=parse_int,
                          object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def parse_json(body: bytes) -> dict[str, Any]:
    """Strict UTF-8 JSON object: no duplicate keys, no NaN, numbers kept exact (and bounded)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not valid UTF-8 (byte {exc.start})") from None
    if text.count("[") + text.count("{") > MAX_DEPTH:  # fewer brackets than that cannot nest deeper
        _nesting_guard(text)
    try:
        data = _loads(text, _parse_int, _parse_float)
    except _NumberRefused:
        data = _loads(text, _mark_number, _mark_number)
        if isinstance(data, dict):
            errors = tuple(_refused_numbers(data, ""))
            names = ", ".join(e.field for e in errors)
            raise PayloadError(f"number too large to keep exactly ({names})", errors) from None
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object")
    # Valid UTF-8 holds no surrogates: only a \uD800-\uDFFF escape can make one (a pair is fine).
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadError("body contains an unpaired UTF-16 surrogate escape") from None
    return data


def parse_timestamp(raw: Any) -> datetime:
    if not isinstance(raw, str) or not _RFC3339.fullmatch(raw):
        raise ValueError("must be an RFC 3339 date-time such as 2025-01-05T10:15:32Z")
    parsed = datetime.fromisoformat(raw.replace("z", "Z").replace("t", "T"))
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is a moment of the year 0 in UTC
        raise ValueError("out of range: in UTC it falls outside the years 0001-9999") from None


def _string_or_number(value: Any) -> str | None:
    plain = isinstance(value, str | int | float | Decimal) and not isinstance(value, bool)
    return None if plain else "must be a string or a number"


def _strings(value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be a list of strings"
    for index, item in enumerate(value):
        if not isinstance(item, str):
            return f"must be a list of strings (item {index} is not)"
    return None


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be an object (form field label -> value)"


# The documented optional fields (README, "The webhook contract") and the type the sync reads each as;
# null is "no value" for every one of them. `comment` is checked by _comment_errors.
STRING_FIELDS = ("title", "description", "status", "severity", "owner", "dueAt", "url")
OTHER_FIELDS: dict[str, Callable[[Any], str | None]] = {
    "risk": _string_or_number, "tags": _strings, "fields": _object, "changedFields": _strings}
COMMENT_TEXT_FIELDS = ("author", "createdAt", "body")


def _comment_id_problem(ident: Any) -> str | None:
    # Unlike ncId, no format: any non-empty printable string. Surrounding whitespace is refused, not stripped:
    # "c-1\n" is not the id Qualio gave (render.comment_key strips, so "c-1" and "c-1\n" would be one comment).
    if isinstance(ident, str) and ident and ident.strip() == ident and ident.isprintable():
        return None
    return "must be a non-empty string without surrounding whitespace or control characters"


def _comment_errors(comment: Any) -> list[FieldError]:
    if not isinstance(comment, dict):
        return [FieldError("comment", 'must be an object: {"id", "author", "createdAt", "body"}')]
    errors = []
    if comment.get("id") is not None and (problem := _comment_id_problem(comment["id"])):
        errors.append(FieldError("comment.id", problem))
    for key in COMMENT_TEXT_FIELDS:
        if comment.get(key) is not None and not isinstance(comment[key], str):
            errors.append(FieldError(f"comment.{key}", "must be a string"))
    return errors


def _optional_errors(data: dict[str, Any]) -> list[FieldError]:
    """The documented optional fields of the wrong type, so nothing the sync cannot read is stored."""
    errors = [FieldError(name, "must be a string") for name in STRING_FIELDS
              if (value := data.get(name)) is not None and not isinstance(value, str)]  # inline: the hot path
    errors += [FieldError(name, problem) for name, check in OTHER_FIELDS.items()
               if (value := data.get(name)) is not None and (problem := check(value))]
    if data.get("comment") is not None:
        errors += _comment_errors(data["comment"])
    return errors


def _id_problem(value: Any, pattern: re.Pattern[str], limit: int, what: str) -> str | None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        return f"must be {what}"
    return f"must be at most {limit} characters" if len(value) > limit else None


def validate_event(data: dict[str, Any]) -> NcEvent:
    """Check the three required fields and the documented optional ones; collect every problem before raising."""
    errors: list[FieldError] = []
    event_type, nc_id, raw_ts = data.get("eventType"), data.get("ncId"), data.get("timestamp")
    checks = (("eventType", event_type, _EVENT_TYPE, EVENT_TYPE_MAX, "a dotted lower-case name such as nc.updated"),
              ("ncId", nc_id, _NC_ID, NC_ID_MAX, "an NC code such as NC-2025-001 or NCR-12"))
    for name, value, pattern, limit, what in checks:
        problem = "required" if value is None else _id_problem(value, pattern, limit, what)
        if problem:
            errors.append(FieldError(name, problem))
    timestamp = None
    if raw_ts is None:
        errors.append(FieldError("timestamp", "required"))
    else:
        try:
            timestamp = parse_timestamp(raw_ts)
        except ValueError as exc:
            errors.append(FieldError("timestamp", str(exc)))
    errors.extend(_optional_errors(data))
    if errors or timestamp is None:
        names = ", ".join(e.field for e in errors)
        raise PayloadError(f"the payload does not match the NC event contract ({names})", tuple(errors))
    assert isinstance(event_type, str) and isinstance(nc_id, str)
    return NcEvent(event_type=event_type, nc_id=nc_id, timestamp=timestamp, payload=data)


def parse_event(body: bytes) -> NcEvent:
    return validate_event(parse_json(body))
