"""Scenario 6, secrets: webhook secrets, tokens and the Jira API token never appear in logs, error bodies or repr."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import requests

from connector.settings import load_settings
from tests.helpers import signed
from tests.processes import free_port, running
from tests.reliability.figures import Figures, report

pytestmark = pytest.mark.slow

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"never-log-this-webhook-secret!!").decode()
WEBHOOK_TOKEN = "tok-never-log-this-bearer-token"
JIRA_TOKEN = "jira-api-token-never-log-this"
QUALIO_KEY = "qualio-key-never-log-this"


def forbidden() -> list[str]:
    raw = WEBHOOK_SECRET.removeprefix("whsec_")
    basic = base64.b64encode(f"bot@example.com:{JIRA_TOKEN}".encode()).decode()
    return [WEBHOOK_SECRET, raw, WEBHOOK_TOKEN, JIRA_TOKEN, QUALIO_KEY, basic]


def test_secrets_never_leak(db_url, tmp_path: Path):
    figures = Figures(scenario=f"secrets ({db_url.split(':', 1)[0].split('+')[0]})")
    started = time.monotonic()
    port, jira_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"NC_CONNECTOR_DATABASE_URL": db_url, "NC_CONNECTOR_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "NC_CONNECTOR_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "NC_CONNECTOR_JIRA_URL": f"http://127.0.0.1:{jira_port}",
           "NC_CONNECTOR_JIRA_EMAIL": "bot@example.com", "NC_CONNECTOR_JIRA_API_TOKEN": JIRA_TOKEN,
           "NC_CONNECTOR_JIRA_PROJECT": "QA", "NC_CONNECTOR_QUALIO_API_KEY": QUALIO_KEY,
           "NC_CONNECTOR_QUALIO_URL": f"http://127.0.0.1:{jira_port}", "NC_CONNECTOR_LOG_LEVEL": "DEBUG",
           "NC_CONNECTOR_WORKER_POLL_INTERVAL": "0.1s", "NC_CONNECTOR_RETRY_BASE": "0.2s",
           "NC_CONNECTOR_MAX_BODY_BYTES": "2048"}
    bodies: list[str] = []
    log = tmp_path / "serve.log"
    # Jira is the sandbox with other credentials: every call the worker makes is refused (401) and logged.
    with running(["sandbox", "--port", str(jira_port), "--quiet"], {}, tmp_path / "sandbox.log",
                 ready_url=f"http://127.0.0.1:{jira_port}/_sandbox/health"), \
         running(["serve", "--port", str(port), "--workers", "2"], env, log, ready_url=f"{base}/readyz"):
        payload = json.dumps({"eventType": "nc.created", "ncId": "NC-5-5", "timestamp": "2025-01-05T10:15:32Z",
                              "title": "secret test"}).encode()
        attempts = [
            (payload, signed(payload, secret=WEBHOOK_SECRET)),
            (payload, {**signed(payload, secret=WEBHOOK_SECRET), "webhook-signature": "v1,AAAA"}),
            (payload, {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}x"}),
            (payload, {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}),
            (b"{" + payload, signed(b"{" + payload, secret=WEBHOOK_SECRET)),
            (b'{"x": "' + b"a" * 5000 + b'"}', signed(b"{}", secret=WEBHOOK_SECRET)),
        ]
        for body, headers in attempts:
            response = requests.post(f"{base}/webhooks/qualio", data=body, headers=headers, timeout=10)
            assert response.status_code < 500
            figures.acknowledged += response.status_code in (200, 202)
            bodies.append(response.text)
        oversized = requests.post(f"{base}/webhooks/qualio", data=iter([b'{"x": "', b"a" * 5000, b'"}']),
                                  headers=signed(b"", secret=WEBHOOK_SECRET), timeout=10)  # chunked, no length
        assert oversized.status_code == 413
        bodies.append(oversized.text)
        for path in ("/healthz", "/readyz", "/metrics", "/nope"):
            bodies.append(requests.get(base + path, timeout=10).text)
        time.sleep(2)  # let the worker fail against Jira (401) a few times and log it
    figures.sent = len(attempts) + 1
    captured = log.read_text(encoding="utf-8", errors="replace")
    assert "401" in captured or "Unauthorized" in captured  # the worker did log Jira's refusal
    settings_repr = repr(load_settings({k: v for k, v in env.items()}))
    for secret in forbidden():
        assert secret not in captured, f"a secret is in the log: {secret[:6]}…"
        assert all(secret not in body for body in bodies)
        assert secret not in settings_repr
    figures.seconds = time.monotonic() - started
    figures.note = f"{len(captured.splitlines())} log lines and {len(bodies)} answers searched"
    report(figures)
