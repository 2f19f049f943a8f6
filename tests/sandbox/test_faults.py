"""The sandbox's injected faults: queued 429s and 503s, repeating faults, latency rules, slow answers and
dropped connections."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from connector.sandbox import SandboxState, create_sandbox_app
from tests.sandbox.conftest import V2, assert_error, call, create, new_issue


def test_injected_429_then_503(client: FlaskClient) -> None:
    faults = {"faults": [{"kind": "rate_limit", "count": 2, "retryAfter": 3, "method": "POST",
                          "path": f"{V2}/issue"},
                         {"kind": "503", "count": 1, "retryAfter": None, "path": f"{V2}/issue/*"}]}
    settings = call(client, "POST", "/_sandbox/faults", faults).get_json()
    assert [f["kind"] for f in settings["faults"]] == ["rate_limit", "unavailable"]

    for _ in range(2):
        limited = call(client, "POST", f"{V2}/issue", new_issue())
        assert assert_error(limited, 429)["errorMessages"] == ["Rate limit exceeded."]
        assert limited.headers["Retry-After"] == "3"
        assert (limited.headers["X-RateLimit-Remaining"], limited.headers["RateLimit-Reason"]) == (
            "0", "jira-quota-tenant-based")
        assert "X-RateLimit-Limit" in limited.headers and "X-RateLimit-Reset" in limited.headers
    assert call(client, "GET", f"{V2}/myself").status_code == 200  # other requests pass
    key = create(client)
    unavailable = call(client, "GET", f"{V2}/issue/{key}")
    assert_error(unavailable, 503)
    assert "Retry-After" not in unavailable.headers
    assert call(client, "GET", f"{V2}/issue/{key}").status_code == 200
    stats = call(client, "GET", "/_sandbox/stats").get_json()
    assert (stats["faultsServed"]["rate_limit"], stats["faultsServed"]["unavailable"], stats["creates"]) == (2, 1, 1)
    assert call(client, "GET", "/_sandbox/faults").get_json()["faults"] == []


def test_fault_without_count_repeats_until_cleared(client: FlaskClient, state: SandboxState) -> None:
    state.add_fault("unavailable", None, retry_after=2, method="GET")
    assert [call(client, "GET", f"{V2}/myself").status_code for _ in range(3)] == [503, 503, 503]
    assert call(client, "POST", f"{V2}/issue", new_issue()).status_code == 201
    state.clear_faults()
    assert call(client, "GET", f"{V2}/myself").status_code == 200


def test_latency_rules_and_slow_answers(make_state: Callable[..., SandboxState], sleeps: list[float]) -> None:
    state = make_state(latency=0.05)
    client = create_sandbox_app(state).test_client()
    call(client, "GET", f"{V2}/myself")
    assert sleeps == [0.05]
    call(client, "POST", "/_sandbox/faults", {"latency": {"seconds": 0.25, "method": "POST", "path": f"{V2}/issue"}})
    call(client, "GET", f"{V2}/myself")
    create(client)
    assert sleeps == [0.05, 0.25]
    state.add_fault("slow", seconds=12, path=f"{V2}/issue")
    create(client)  # answered late, but the issue is created
    assert sleeps == [0.05, 0.25, 0.25, 12]
    assert state.stats()["creates"] == 2


def test_dropped_connections(client: FlaskClient, state: SandboxState) -> None:
    state.add_fault("drop", method="POST", path=f"{V2}/issue")
    with pytest.raises(ConnectionAbortedError):
        call(client, "POST", f"{V2}/issue", new_issue())
    assert state.stats()["creates"] == 0
    state.add_fault("drop_after", method="POST", path=f"{V2}/issue")
    with pytest.raises(ConnectionAbortedError):
        call(client, "POST", f"{V2}/issue", new_issue())
    assert [i.key for i in state.issues()] == ["QA-1"]  # applied, but the answer was lost
    log = state.requests()
    assert [(r.fault, r.status, r.delivered) for r in log] == [("drop", None, False), ("drop_after", 201, False)]
