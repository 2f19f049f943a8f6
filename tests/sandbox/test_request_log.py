"""The sandbox's request log: arrivals, answers, faults, filters, and Retry-After violations."""

from __future__ import annotations

from flask.testing import FlaskClient

from connector.sandbox import SandboxState
from tests.sandbox.conftest import START, V2, FakeClock, call, create, new_issue


def test_request_log_records_arrivals_and_retry_after_violations(client: FlaskClient, state: SandboxState,
                                                                 clock: FakeClock) -> None:
    state.add_fault("rate_limit", retry_after=5, method="POST")
    assert call(client, "POST", f"{V2}/issue", new_issue()).status_code == 429
    clock.advance(2)
    create(client)  # too early: Retry-After said 5 seconds
    clock.advance(4)
    create(client)
    log = call(client, "GET", "/_sandbox/requests", query_string={"method": "POST"}).get_json()
    assert [(r["status"], r["fault"], r["retryAfter"], r["time"] - START) for r in log["requests"]] == [
        (429, "rate_limit", 5, 0), (201, None, None, 2), (201, None, None, 6)]
    first = log["requests"][0]
    assert (first["method"], first["path"], first["delivered"]) == ("POST", f"{V2}/issue", True)
    assert first["body"]["fields"]["summary"] == "Pump P-7 calibration overdue"
    assert [(v["limited"], v["request"], v["early"]) for v in log["retryAfterViolations"]] == [(1, 2, 3.0)]
    assert state.stats()["retryAfterViolations"] == 1
    assert call(client, "GET", "/_sandbox/requests", query_string={"since": 2}).get_json()["requests"][0]["seq"] == 3
    paths = {r["path"] for r in call(client, "GET", "/_sandbox/requests").get_json()["requests"]}
    assert not any(p.startswith("/_sandbox") for p in paths)  # the control API is never logged
