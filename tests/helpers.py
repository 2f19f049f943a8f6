"""Small helpers shared by tests: signing and posting deliveries."""

from __future__ import annotations

import json
import uuid
from typing import Any

from connector.receive.signing import signed_headers
from tests.conftest import TEST_SECRET


def body_of(payload: dict[str, Any] | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def signed(body: bytes, secret: str = TEST_SECRET, webhook_id: str | None = None,
           timestamp: int | None = None) -> dict[str, str]:
    headers = signed_headers(secret, webhook_id or f"msg_{uuid.uuid4().hex}", body, timestamp)
    headers["Content-Type"] = "application/json"
    return headers


def post(client: Any, payload: dict[str, Any] | bytes, **kwargs: Any) -> Any:
    body = body_of(payload)
    return client.post("/webhooks/qualio", data=body, headers=signed(body, **kwargs))
