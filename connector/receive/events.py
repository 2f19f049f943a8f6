"""The NC webhook contract: parse and validate a delivery body into an NcEvent (pure).

Qualio publishes no webhook schema; this module is our documented contract (see README):
a JSON object with ``eventType``, ``ncId`` and an RFC 3339 ``timestamp``; every other
field is kept as it came.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
# Seed style NC-2025-001 and Qualio event codes such as NCR-12.
_NC_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)+$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
MAX_DEPTH = 32
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


def parse_json(body: bytes) -> dict[str, Any]:
    """Strict UTF-8 JSON object: no duplicate keys, no NaN, numbers kept exact."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not valid UTF-8 (byte {exc.start})") from None
    if text.count("[") + text.count("{") > MAX_DEPTH:  # fewer brackets than that cannot nest deeper
        _nesting_guard(text)
    try:
        data = json.loads(text, parse_float=Decimal, object_pairs_hook=_reject_duplicate_keys,
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
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
    if not isinstance(raw, str) or not _RFC3339.match(raw):
        raise ValueError("must be an RFC 3339 date-time such as 2025-01-05T10:15:32Z")
    parsed = datetime.fromisoformat(raw.replace("z", "Z").replace("t", "T"))
    return parsed.astimezone(UTC)


def validate_event(data: dict[str, Any]) -> NcEvent:
    """Check the three required fields; collect every problem before raising."""
    errors: list[FieldError] = []
    event_type, nc_id, raw_ts = data.get("eventType"), data.get("ncId"), data.get("timestamp")
    if event_type is None:
        errors.append(FieldError("eventType", "required"))
    elif not isinstance(event_type, str) or not _EVENT_TYPE.match(event_type) or len(event_type) > 64:
        errors.append(FieldError("eventType", "must be a dotted lower-case name such as nc.updated"))
    if nc_id is None:
        errors.append(FieldError("ncId", "required"))
    elif not isinstance(nc_id, str) or not _NC_ID.match(nc_id) or len(nc_id) > 64:
        errors.append(FieldError("ncId", "must be an NC code such as NC-2025-001 or NCR-12"))
    timestamp = None
    if raw_ts is None:
        errors.append(FieldError("timestamp", "required"))
    else:
        try:
            timestamp = parse_timestamp(raw_ts)
        except ValueError as exc:
            errors.append(FieldError("timestamp", str(exc)))
    if errors or timestamp is None:
        names = ", ".join(e.field for e in errors)
        raise PayloadError(f"the payload does not match the NC event contract ({names})", tuple(errors))
    assert isinstance(event_type, str) and isinstance(nc_id, str)
    return NcEvent(event_type=event_type, nc_id=nc_id, timestamp=timestamp, payload=data)


def parse_event(body: bytes) -> NcEvent:
    return validate_event(parse_json(body))
