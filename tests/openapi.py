"""A small OpenAPI 3.0/3.1 schema checker for the tests (jsonschema is not installed).

``load(name)`` reads a published description from ``REFERENCE_DIR``; ``OpenAPI.problems`` lists what in a
value its schema does not allow, and the other methods find the schemas of an operation's request body
and responses.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.conftest import REFERENCE_DIR

Json = dict[str, Any]

JIRA_SPEC = "jira-platform-openapi.json"
QUALIO_SPEC = "qualio-openapi.json"


class OpenAPI:
    """An OpenAPI description and a checker for its schemas: $ref, allOf/anyOf/oneOf (exactly one), type
    (lists, "null", nullable; a bool is never a number), const, enum, date-time format, required, properties,
    additionalProperties and items.

    ``request=True`` is stricter than the spec, on purpose: a key the schema does not declare is an error even
    where ``additionalProperties`` is true (a typo such as "feilds" would otherwise pass), and a ``readOnly``
    property must not be sent. Free-form maps (no ``properties``) stay free-form.
    """

    TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,),
                                          "boolean": (bool,), "integer": (int,), "number": (int, float)}

    def __init__(self, spec: Json) -> None:
        self.spec = spec

    @classmethod
    def from_file(cls, path: Path) -> OpenAPI:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    # -- finding schemas ---------------------------------------------------------------------------

    def component(self, name: str) -> Json:
        """A reference to a schema of ``components/schemas``, which must exist."""
        assert name in self.spec["components"]["schemas"], name
        return {"$ref": f"#/components/schemas/{name}"}

    def operation(self, path: str, method: str) -> Json:
        """The operation of a path template, as the spec writes it."""
        operation: Json = self.spec["paths"][path][method.lower()]
        return operation

    def match(self, path: str, method: str) -> tuple[str, Json]:
        """The (path template, operation) a concrete request path calls; the most literal template wins."""
        candidates = []
        for template, item in self.spec["paths"].items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, path) and method.lower() in item:
                candidates.append((template.count("{"), template, item[method.lower()]))
        assert candidates, f"{method} {path} is not an operation of {self.spec['info']['title']}"
        _, template, operation = min(candidates)
        return template, operation

    @staticmethod
    def request_body(operation: Json) -> Json | None:
        """The JSON schema of an operation's request body, or None if it takes no JSON body."""
        schema: Json | None = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get(
            "schema")
        return schema

    def response(self, path: str, method: str, status: int) -> Json:
        """The JSON schema of a documented response of an operation (path template as the spec writes it)."""
        schema: Json = self.operation(path, method)["responses"][str(status)]["content"]["application/json"]["schema"]
        return schema

    def resolve(self, schema: Json) -> Json:
        while "$ref" in schema:
            node: Any = self.spec
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    # -- checking values ---------------------------------------------------------------------------

    def problems(self, value: Any, schema: Json, where: str = "$", request: bool = False) -> list[str]:
        """Everything in ``value`` that ``schema`` does not allow; ``request=True`` for a body to be sent."""
        schema = self.resolve(schema)
        found: list[str] = []
        for part in schema.get("allOf", []):
            found += self.problems(value, part, where, request)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                matching = [s for s in schema[key] if not self.problems(value, s, where, request)]
                if not matching or (key == "oneOf" and len(matching) > 1):
                    found.append(f"{where}: matches {len(matching)} of the {key} alternatives")
        if "const" in schema and value != schema["const"]:
            found.append(f"{where}: {value!r} is not {schema['const']!r}")
        if "enum" in schema and value not in schema["enum"] and not (value is None and schema.get("nullable")):
            found.append(f"{where}: {value!r} not in {schema['enum']}")
        if "type" in schema and not self._type_ok(value, schema):
            kind = "null" if value is None else type(value).__name__
            return [*found, f"{where}: {kind} is not {schema['type']}"]
        if schema.get("format") == "date-time" and isinstance(value, str):
            found += self._date_time(value, where)
        if isinstance(value, dict):
            found += self._object(value, schema, where, request)
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                found += self.problems(item, schema["items"], f"{where}[{i}]", request)
        return found

    def _type_ok(self, value: Any, schema: Json) -> bool:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if value is None:
            return "null" in types or bool(schema.get("nullable"))
        if isinstance(value, bool) and "boolean" not in types:
            return False
        return any(isinstance(value, self.TYPES.get(t, ())) for t in types)

    @staticmethod
    def _date_time(value: str, where: str) -> list[str]:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return [f"{where}: {value!r} is not a date-time"]
        return []

    def _object(self, value: Json, schema: Json, where: str, request: bool) -> list[str]:
        found = [f"{where}: required {name!r} missing" for name in schema.get("required", []) if name not in value]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            at = f"{where}.{name}"
            if name in properties:
                if request and self.resolve(properties[name]).get("readOnly"):
                    found.append(f"{at}: read-only, must not be sent")
                found += self.problems(item, properties[name], at, request)
            elif isinstance(extra, dict):
                found += self.problems(item, extra, at, request)
            elif extra is False or (request and properties):
                found.append(f"{at}: not a property of this schema")
        return found


@functools.cache
def load(name: str) -> OpenAPI:
    """A published description from REFERENCE_DIR, read once per run."""
    return OpenAPI.from_file(REFERENCE_DIR / name)
