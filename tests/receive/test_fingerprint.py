"""Canonical JSON and fingerprints (pure)."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from connector.receive.events import parse_json
from connector.receive.fingerprint import _canonical, _encode, canonical_json, fingerprint
from tests.conftest import load_fixture


def fp_of(raw: str) -> str:
    return fingerprint(parse_json(raw.encode()))


def test_key_order_whitespace_and_escapes_do_not_matter():
    a = '{"ncId": "NC-1-1", "title": "Café", "n": 1}'
    b = '{\n  "n" : 1,\n  "title": "Caf\\u00e9",\n  "ncId":"NC-1-1"\n}'
    assert fp_of(a) == fp_of(b)


def test_number_spellings_are_normalised():
    assert fp_of('{"x": 1}') == fp_of('{"x": 1.0}') == fp_of('{"x": 1e0}') == fp_of('{"x": 10E-1}')
    assert fp_of('{"x": 0.5}') == fp_of('{"x": 5e-1}') == fp_of('{"x": 0.50}')
    assert fp_of('{"x": 1}') != fp_of('{"x": 1.5}')


def test_unicode_is_nfc_normalised():
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    assert fingerprint({"t": composed}) == fingerprint({"t": decomposed})


def test_any_value_change_changes_the_fingerprint():
    a, b = load_fixture("same_second_pair_a"), load_fixture("same_second_pair_b")
    assert (a["ncId"], a["timestamp"]) == (b["ncId"], b["timestamp"])
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint({"x": "1"}) != fingerprint({"x": 1})
    assert fingerprint({"x": None}) != fingerprint({})
    assert fingerprint({"x": [1, 2]}) != fingerprint({"x": [2, 1]})


def test_excluded_fields_do_not_count():
    a = {"ncId": "NC-1-1", "meta": {"attempt": 1, "kept": True}}
    b = {"ncId": "NC-1-1", "meta": {"attempt": 2, "kept": True}}
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a, ["meta.attempt"]) == fingerprint(b, ["meta.attempt"])
    assert fingerprint(a, ["meta.attempt"]) != fingerprint({**b, "meta": {"attempt": 2, "kept": False}},
                                                            ["meta.attempt"])
    assert a["meta"]["attempt"] == 1  # the payload itself is untouched


def test_canonical_form_is_compact_sorted_utf8():
    assert canonical_json({"b": [1.0, True, None], "a": "é"}) == '{"a":"é","b":[1,true,null]}'
    assert canonical_json({"d": Decimal("2.50")}) == '{"d":2.5}'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(max_size=20)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6), st.booleans(), st.integers(0, 4))
def test_reserialisation_never_changes_the_fingerprint(payload, ascii_only, indent):
    raw = json.dumps(payload, default=float, ensure_ascii=ascii_only, indent=indent or None)
    # a proxy that re-serialises: reversed key order, other whitespace, other escapes
    reparsed = parse_json(raw.encode())
    again = json.dumps(dict(reversed(list(reparsed.items()))), default=float, ensure_ascii=not ascii_only)
    assert fingerprint(reparsed) == fingerprint(parse_json(again.encode()))


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_fast_spelling_is_the_value_by_value_spelling(payload):
    # canonical_json takes a json.dumps shortcut when it can; it must never spell anything differently
    assert canonical_json(payload) == _encode(_canonical(payload))


def test_fingerprints_are_stable_across_versions():
    # Stored fingerprints must keep matching new copies after an upgrade: pinned values, computed by 0.1.0.
    integral_and_strings = parse_json(b'{"eventType":"nc.updated","ncId":"NC-2025-001",'
                                      b'"timestamp":"2025-01-05T10:15:32Z","title":"Caf\\u00e9","n":10}')
    with_decimals = parse_json(json.dumps({
        "eventType": "nc.updated", "ncId": "NC-2025-001", "timestamp": "2025-01-05T10:15:32Z", "severity": "major",
        "score": 1.50, "count": 3, "tags": ["a", "Cafe\u0301"], "ok": True, "none": None}).encode())
    assert fingerprint(integral_and_strings) == "5a42ce84990c1a38879b6329351c82164c40e46b66b6b708dfd0762144e084d9"
    assert fingerprint(with_decimals) == "6892f4475fb689f966a46bd6e79966155e071aec05150f07e88dc5d2776dd744"


def test_canonical_form_of_the_numbers_still_accepted_is_unchanged():
    # Pinned before numbers were bounded (64 characters, exponents within 400): every number still accepted
    # keeps its spelling, so a stored fingerprint still matches a new copy of its delivery.
    literals = [b"1" * 64, b"-" + b"1" * 63, b"1.7976931348623157e+308", b"5e-324", b"1e400", b"-1e-400", b"0.5",
                b"1E+2", b"0e400", b"10E-1", b"2.50", b"0.000", b"-0", b"123456789.123456789e-5"]
    canonical = canonical_json(parse_json(b'{"n": [' + b", ".join(literals) + b"]}"))
    assert len(canonical) == 1620
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "e73ddfbea938545620e1cb883dd5ded173b6cac5e0814ef843362564d5d00742")
