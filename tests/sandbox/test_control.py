"""The sandbox's /_sandbox control API: health, issues, fault settings (and their validation), stats, reset."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.sandbox.conftest import V2, assert_issue, assert_status, call, create


def test_control_api(client: FlaskClient) -> None:
    assert client.get("/_sandbox/health").get_json() == {"status": "ok", "deploymentType": "Server"}
    key = create(client, labels=["x"])
    call(client, "POST", f"{V2}/issue/{key}/comment", {"body": "hello"})
    call(client, "POST", f"{V2}/issue/{key}/remotelink", {"object": {"url": "https://q.example/1", "title": "NC"}})
    [issue] = client.get("/_sandbox/issues").get_json()["issues"]
    assert_issue({k: v for k, v in issue.items() if k != "remoteLinks"})
    assert (issue["fields"]["comment"]["comments"][0]["body"], issue["remoteLinks"][0]["object"]["title"]) == (
        "hello", "NC")
    for bad in ({"faults": [{"kind": "teapot"}]}, {"faults": [{"kind": "429", "retryAfter": 1.5}]},
                {"faults": [{"kind": "429", "count": 0}]}, {"bogus": 1}, {"budget": {"limit": 0}},
                {"latency": -1}, {"searchLag": "soon"}, ["not", "an", "object"]):
        assert "error" in assert_status(client.post("/_sandbox/faults", json=bad), 400)
    call(client, "POST", "/_sandbox/faults", {"faults": [{"kind": "drop"}], "budget": {"limit": 5, "window": 1},
                                              "latency": 0.01})
    stats = client.get("/_sandbox/stats").get_json()
    assert (stats["creates"], stats["comments"], stats["remoteLinksCreated"], stats["issues"]) == (1, 1, 1, 1)
    assert stats["requests"] == 3
    assert client.post("/_sandbox/reset").get_json() == {"status": "reset"}
    assert client.get("/_sandbox/issues").get_json() == {"issues": []}
    assert client.get("/_sandbox/faults").get_json() == {"faults": [], "latency": [], "budget": None, "searchLag": 0.0}
    assert client.get("/_sandbox/stats").get_json()["requests"] == 0
    assert create(client) == "QA-1"
