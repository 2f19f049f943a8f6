"""The sandbox's server, identity and reference data: serverInfo, authentication, users, fields, project,
permissions, the create screen, priorities, issue types, resolutions and statuses."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from connector.sandbox import SandboxState, create_sandbox_app
from tests.sandbox.conftest import EMAIL, PAT, TOKEN, V2, V3, assert_error, assert_response, call


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
def test_server_info_is_anonymous_and_matches_the_schema(make_state: Callable[..., SandboxState],
                                                        deployment: str) -> None:
    client = create_sandbox_app(make_state(deployment_type=deployment)).test_client()
    body = assert_response(client.get(f"{V2}/serverInfo"), f"{V3}/serverInfo", 200)
    assert body["deploymentType"] == deployment
    assert body["versionNumbers"] == ([1001, 0, 0] if deployment == "Cloud" else [9, 12, 15])
    assert body["baseUrl"] == "http://localhost"


def test_rest_requires_basic_or_bearer_credentials(client: FlaskClient) -> None:
    missing = assert_error(client.get(f"{V2}/myself"), 401)
    assert missing["errorMessages"] == ["You are not authenticated. Authentication required to perform this operation."]
    wrong = client.get(f"{V2}/myself", auth=(EMAIL, "not-the-token"))
    assert_error(wrong, 401)
    assert wrong.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    assert_error(client.get(f"{V2}/issue/QA-1", headers={"Authorization": "Bearer wrong"}), 401)
    assert client.get(f"{V2}/myself", auth=(EMAIL, TOKEN)).status_code == 200
    assert client.get(f"{V2}/myself", auth=("sandbox", TOKEN)).status_code == 200
    assert client.get(f"{V2}/myself", headers={"Authorization": f"Bearer {PAT}"}).status_code == 200


def test_credentials_are_configurable(make_state: Callable[..., SandboxState]) -> None:
    client = create_sandbox_app(make_state(email="bot@corp.example", token="t0k", pat="p4t")).test_client()
    assert client.get(f"{V2}/myself", auth=("bot@corp.example", "t0k")).get_json()["emailAddress"] == "bot@corp.example"
    assert client.get(f"{V2}/myself", headers={"Authorization": "Bearer p4t"}).status_code == 200
    assert client.get(f"{V2}/myself", auth=(EMAIL, TOKEN)).status_code == 401


REFERENCE_ENDPOINTS = [
    ("myself", "myself"),
    ("field", "field"),
    ("project", "project"),
    ("project/QA", "project/{projectIdOrKey}"),
    ("project/10000", "project/{projectIdOrKey}"),
    ("priority", "priority"),
    ("issuetype", "issuetype"),
    ("resolution", "resolution"),
    ("status", "status"),
    ("user/search?query=dana", "user/search"),
    ("user/search?username=dana", "user/search"),
    ("mypermissions?projectKey=QA&permissions=CREATE_ISSUES,EDIT_ISSUES", "mypermissions"),
    ("issue/createmeta/QA/issuetypes/10002", "issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}"),
]


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
@pytest.mark.parametrize(("v2_path", "v3_path"), REFERENCE_ENDPOINTS)
def test_reference_endpoints_match_the_schemas(make_state: Callable[..., SandboxState], deployment: str,
                                               v2_path: str, v3_path: str) -> None:
    client = create_sandbox_app(make_state(deployment_type=deployment)).test_client()
    assert_response(call(client, "GET", f"{V2}/{v2_path}"), f"{V3}/{v3_path}", 200)


def test_create_screen_and_permissions_for_live_mapping_checks(client: FlaskClient) -> None:
    meta = call(client, "GET", f"{V2}/issue/createmeta/QA/issuetypes/10002").get_json()
    ids = {f["fieldId"]: f for f in meta["values"]}  # Data Center's name for the list
    assert "labels" in ids and ids["summary"]["required"] and not ids["labels"]["required"]
    held = call(client, "GET", f"{V2}/mypermissions?projectKey=QA&permissions=CREATE_ISSUES,ADMINISTER_PROJECTS")
    assert {k: v["havePermission"] for k, v in held.get_json()["permissions"].items()} == {
        "CREATE_ISSUES": True, "ADMINISTER_PROJECTS": False}
    assert_error(call(client, "GET", f"{V2}/issue/createmeta/NOPE/issuetypes/10002"), 404)
    assert_error(call(client, "GET", f"{V2}/issue/createmeta/QA/issuetypes/999"), 404)


def test_field_list_describes_system_and_custom_fields(client: FlaskClient) -> None:
    fields = {f["id"]: f for f in call(client, "GET", f"{V2}/field").get_json()}
    assert {"summary", "description", "labels", "priority", "status", "assignee", "duedate", "components",
            "issuetype", "project"} <= set(fields)
    assert fields["labels"]["schema"] == {"type": "array", "items": "string", "system": "labels"}
    severity = fields["customfield_10010"]
    assert (severity["name"], severity["custom"], severity["schema"]["type"]) == ("Severity", True, "option")
    assert severity["clauseNames"] == ["cf[10010]", "Severity"]
    assert fields["customfield_10011"]["name"] == "NC Link"
    assert fields["customfield_10012"]["schema"]["custom"].endswith(":textarea")


def test_users_are_addressed_by_account_id_on_cloud_and_by_name_on_server(
        make_state: Callable[..., SandboxState]) -> None:
    cloud = create_sandbox_app(make_state(deployment_type="Cloud")).test_client()
    server = create_sandbox_app(make_state()).test_client()
    [dana] = call(cloud, "GET", f"{V2}/user/search?query=dana@example.com").get_json()
    assert dana["accountId"].startswith("712020:") and "name" not in dana
    assert call(server, "GET", f"{V2}/user/search?username=dana").get_json()[0]["name"] == "dana"
    assert_error(call(cloud, "GET", f"{V2}/user/search"), 400)
    assert_error(call(cloud, "GET", f"{V2}/project/NOPE"), 404)
