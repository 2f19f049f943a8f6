"""The console under test: an app with a console token, a session that logs in, CSRF values read off pages."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Engine, update

from connector.clock import utcnow
from connector.models import Delivery
from connector.ops.app import create_app
from connector.settings import Settings
from tests.conftest import make_settings
from tests.helpers import post

TOKEN = "console-token-for-tests-7d1f0c9a2b"
JIRA_URL = "https://jira.example.test"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_settings(db_url: str, **env: str) -> Settings:
    return make_settings(db_url, **{"NC_CONNECTOR_CONSOLE_TOKEN": TOKEN, "NC_CONNECTOR_JIRA_URL": JIRA_URL,
                                    "NC_CONNECTOR_JIRA_PROJECT": "QA", **env})


def console_client(db_url: str, engine: Engine, **env: str) -> Any:
    return create_app(console_settings(db_url, **env), engine).test_client()


def csrf_of(page: Any) -> str:
    found = CSRF.search(page.get_data(as_text=True))
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(client: Any) -> str:
    """Log in through the form; returns the session's CSRF value (what the pages' forms carry)."""
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"csrf_token": csrf_of(form), "token": TOKEN, "next": "/console/"})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return csrf_of(client.get("/console/"))


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ingest(client: Any, payload: dict[str, Any], times: int = 1) -> list[int]:
    """Send a payload through the webhook (signed), `times` times; the answers' status codes."""
    return [post(client, json.dumps(payload).encode()).status_code for _ in range(times)]


def bury(engine: Engine, delivery_id: int, error: str = "transition failed: Jira refused (400)",
         step: str = "transition") -> None:
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id == delivery_id)
                     .values(status="dead", attempts=3, last_error=error, failed_step=step, finished_at=utcnow()))
