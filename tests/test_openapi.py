"""The tests' OpenAPI checker (tests/openapi.py): each check it makes must be able to fail."""

from __future__ import annotations

from typing import Any

import pytest

from tests.openapi import JIRA_SPEC, QUALIO_SPEC, OpenAPI, load

Json = dict[str, Any]

THING_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}
SPEC = OpenAPI({
    "info": {"title": "Toy API"},
    "paths": {
        "/things": {"post": {"operationId": "createThing", "requestBody": {"content": THING_JSON},
                             "responses": {"201": {"content": THING_JSON}}}},
        "/things/{id}": {"get": {"operationId": "getThing"}, "delete": {"operationId": "deleteThing"}},
        "/things/count": {"get": {"operationId": "countThings"}},
    },
    "components": {"schemas": {
        "Thing": {"type": "object", "required": ["name"], "properties": {
            "id": {"type": "string", "readOnly": True},
            "name": {"type": "string"},
            "size": {"type": "integer"},
            "kind": {"type": "string", "enum": ["a", "b"], "nullable": True},
            "at": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
            "meta": {"type": "object", "additionalProperties": {"type": "string"}},
            "extra": {"type": "object"},
        }},
        "Tag": {"type": "object", "additionalProperties": False, "properties": {"label": {"type": "string"}}},
    }},
})
THING = SPEC.component("Thing")


@pytest.mark.parametrize(("value", "schema", "expected"), [
    ({"name": "x"}, THING, []),
    ({}, THING, ["$: required 'name' missing"]),
    ([], THING, ["$: list is not object"]),
    ({"name": 1}, THING, ["$.name: int is not string"]),
    ({"name": "x", "size": True}, THING, ["$.size: bool is not integer"]),
    ({"name": "x", "size": 1.5}, THING, ["$.size: float is not integer"]),
    ({"name": None}, THING, ["$.name: null is not string"]),
    ({"name": "x", "kind": None}, THING, []),
    ({"name": "x", "kind": "c"}, THING, ["$.kind: 'c' not in ['a', 'b']"]),
    ({"name": "x", "at": "2025-03-18T09:12:44.123+0000"}, THING, []),
    ({"name": "x", "at": "yesterday"}, THING, ["$.at: 'yesterday' is not a date-time"]),
    ({"name": "x", "tags": [{"label": "ok"}, {"label": 2}]}, THING, ["$.tags[1].label: int is not string"]),
    ({"name": "x", "tags": [{"colour": "red"}]}, THING, ["$.tags[0].colour: not a property of this schema"]),
    ({"name": "x", "meta": {"a": "b", "c": 3}}, THING, ["$.meta.c: int is not string"]),
    ({"name": "x", "undeclared": 1, "id": "7"}, THING, []),  # a response may carry more, and read-only keys
    ({"value": 1}, {"enum": [1, 2]}, ["$: {'value': 1} not in [1, 2]"]),
    (None, {"enum": ["a"]}, ["$: None not in ['a']"]),
    ("v2", {"const": "v1"}, ["$: 'v2' is not 'v1'"]),
    (None, {"type": ["string", "null"]}, []),
    (1, {"type": ["string", "null"]}, ["$: int is not ['string', 'null']"]),
    (None, {"type": "integer", "nullable": True}, []),
    (True, {"type": "number"}, ["$: bool is not number"]),
    (2, {"type": "number"}, []),
    (1, {"allOf": [{"type": "integer"}, {"enum": [2]}]}, ["$: 1 not in [2]"]),
    (1, {"anyOf": [{"type": "string"}, {"type": "boolean"}]}, ["$: matches 0 of the anyOf alternatives"]),
    (1, {"anyOf": [{"type": "integer"}, {"type": "number"}]}, []),
    (1, {"oneOf": [{"type": "integer"}, {"type": "number"}]}, ["$: matches 2 of the oneOf alternatives"]),
    ("x", {"oneOf": [{"type": "integer"}, {"type": "string"}]}, []),
])
def test_response_checks(value: Any, schema: Json, expected: list[str]) -> None:
    assert SPEC.problems(value, schema) == expected


@pytest.mark.parametrize(("body", "expected"), [
    ({"name": "x", "extra": {"anything": 1}}, []),  # free-form maps stay free-form
    ({"name": "x", "undeclared": 1}, ["$.undeclared: not a property of this schema"]),
    ({"name": "x", "id": "7"}, ["$.id: read-only, must not be sent"]),
    ({"name": "x", "tags": [{"label": "ok", "id": 1}]}, ["$.tags[0].id: not a property of this schema"]),
])
def test_request_checks_are_stricter(body: Json, expected: list[str]) -> None:
    assert SPEC.problems(body, THING, request=True) == expected


def test_where_names_the_start_of_the_path() -> None:
    assert SPEC.problems({}, THING, "body") == ["body: required 'name' missing"]


def test_operation_schemas() -> None:
    template, operation = SPEC.match("/things", "POST")
    assert (template, SPEC.request_body(operation)) == ("/things", THING)
    assert SPEC.response("/things", "post", 201) == THING
    assert SPEC.request_body(SPEC.match("/things/7", "DELETE")[1]) is None
    assert SPEC.match("/things/count", "GET")[0] == "/things/count"  # the most literal template wins
    assert SPEC.match("/things/7", "GET")[0] == "/things/{id}"
    with pytest.raises(AssertionError, match="PUT /things/7 is not an operation of Toy API"):
        SPEC.match("/things/7", "PUT")
    with pytest.raises(AssertionError, match="Gadget"):
        SPEC.component("Gadget")


def test_published_specs_load_and_catch_bad_values() -> None:
    jira, qualio = load(JIRA_SPEC), load(QUALIO_SPEC)
    assert load(JIRA_SPEC) is jira  # read once per run
    assert qualio.spec["openapi"].startswith("3.1") and jira.spec["openapi"].startswith("3.0")
    errors = jira.component("ErrorCollection")
    assert jira.problems({"errorMessages": ["x"], "errors": {}}, errors) == []
    assert jira.problems({"errorMessages": "x", "errors": {"key": 1}, "bogus": 1}, errors) == [
        "$.errorMessages: str is not array", "$.errors.key: int is not string",
        "$.bogus: not a property of this schema"]
    comment = jira.component("Comment")
    assert jira.problems({"body": "x", "created": "not a date"}, comment) == [
        "$.created: 'not a date' is not a date-time"]
    assert jira.problems({"body": "x", "created": "2025-03-18T09:12:44.123+0000"}, comment, request=True) == [
        "$.created: read-only, must not be sent"]
