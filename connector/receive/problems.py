"""RFC 9457 problem+json answers: every error names its problem, never a stack trace or a secret."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, json

from connector.receive.events import FieldError


def problem(status: int, title: str, detail: str, errors: Sequence[FieldError] = (),
            headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "status": status, "title": title, "detail": detail}
    if errors:
        body["errors"] = [{"field": e.field, "problem": e.problem} for e in errors]
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
