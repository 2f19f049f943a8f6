"""Canonical JSON and its SHA-256: the identity of a delivery's content (pure functions).

Two bodies that differ only in how a proxy re-serialised them (key order, whitespace,
escapes, ``1.0`` vs ``1``, NFC vs NFD unicode) get the same fingerprint; any change of a
value gets a different one. That is why ncId + timestamp is never the key: two real
changes in the same second differ in content, so both get through.
"""

from __future__ import annotations

import copy
import hashlib
import json
import unicodedata
from collections.abc import Iterable
from decimal import Decimal
from typing import Any


def _number(value: Decimal) -> str:
    """One spelling per numeric value: 1, 1.0, 1e0 and 10E-1 all become '1'."""
    if not value.is_finite():
        raise ValueError("non-finite number")
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {unicodedata.normalize("NFC", k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    return value


def _encode(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_encode(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(Decimal(repr(value)))
    return json.dumps(value, ensure_ascii=False)


class _NotPlain(Exception):
    """A value json.dumps would not spell canonically (a non-integral or float number)."""


def _plain(value: Any) -> Any:
    """NFC strings and integral numbers as int, or _NotPlain: then json.dumps spells it as _encode would."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {unicodedata.normalize("NFC", k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    raise _NotPlain


def canonical_json(payload: Any) -> str:
    """Sorted keys, no insignificant whitespace, NFC strings, one spelling per number."""
    try:
        # The common case (strings, integers, booleans) in one C-speed json.dumps: the same text
        # as _encode, which spells every value itself and costs ten times as much.
        return json.dumps(_plain(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except _NotPlain:
        return _encode(_canonical(payload))


def _without(payload: dict[str, Any], excluded: Iterable[str]) -> dict[str, Any]:
    """A copy of payload with the dotted paths in `excluded` removed."""
    result = copy.deepcopy(payload)
    for path in excluded:
        *parents, leaf = path.split(".")
        node: Any = result
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return result


def fingerprint(payload: dict[str, Any], exclude: Iterable[str] = ()) -> str:
    """SHA-256 (hex) of the canonical JSON of the payload, minus excluded fields."""
    excluded = tuple(exclude)
    body = canonical_json(_without(payload, excluded) if excluded else payload)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()
