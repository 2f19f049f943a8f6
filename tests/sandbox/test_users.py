"""Users in the deployment's shape: Data Center shows key/name (no accountId) and takes {"name"} or {"key"};
Cloud shows accountId only and takes {"accountId"} only. Both refuse the other's identifier, naming the field."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from tests.sandbox.conftest import (
    V2,
    V3,
    Json,
    assert_error,
    assert_response,
    assert_schema,
    call,
    create,
    new_issue,
    spec,
)

MakeClient = Callable[..., FlaskClient]
DANA_ACCOUNT = "712020:9f2c1e7a-dana-0001"
SERVER_KEYS = {"self", "key", "name", "emailAddress", "avatarUrls", "displayName", "active", "timeZone"}


def users_seen(client: FlaskClient) -> list[Json]:
    """The caller, dana by GET user and by user search, and an issue's assignee and reporter."""
    me = assert_response(call(client, "GET", f"{V2}/myself"), f"{V3}/myself", 200)
    cloud = "accountId" in me
    ref = {"accountId": DANA_ACCOUNT} if cloud else {"username": "dana"}
    dana = assert_response(call(client, "GET", f"{V2}/user", query_string=ref), f"{V3}/user", 200)
    search = {"query": "dana@example.com"} if cloud else {"username": "dana@example.com"}
    found = assert_response(call(client, "GET", f"{V2}/user/search", query_string=search), f"{V3}/user/search", 200)
    assignee = {"accountId": DANA_ACCOUNT} if cloud else {"name": "dana"}
    fields = call(client, "GET", f"{V2}/issue/{create(client, assignee=assignee)}").get_json()["fields"]
    return [me, dana, *found, fields["assignee"], fields["reporter"]]


def test_data_center_users_have_key_and_name_and_no_account_id(make_client: MakeClient) -> None:
    client = make_client(deployment_type="Server")
    seen = users_seen(client)
    for user in seen:
        assert_schema(user, spec().component("User"))
        assert "accountId" not in user and "accountType" not in user
        assert set(user) >= SERVER_KEYS
    me, dana, found, assignee, reporter = seen
    assert (me["name"], me["key"], reporter["name"]) == ("sandbox", "sandbox", "sandbox")
    assert (dana["name"], dana["key"], dana["emailAddress"]) == ("dana", "JIRAUSER10100", "dana@example.com")
    assert found == dana and assignee == dana
    assert dana["self"].endswith("/rest/api/2/user?username=dana") and dana["active"] is True


def test_cloud_users_have_an_account_id_and_no_name(make_client: MakeClient) -> None:
    client = make_client(deployment_type="Cloud")
    seen = users_seen(client)
    for user in seen:
        assert_schema(user, spec().component("User"))
        assert "name" not in user and "key" not in user
        assert user["accountType"] == "atlassian"
    _, dana, found, assignee, _ = seen
    assert dana["accountId"] == DANA_ACCOUNT and found == dana and assignee == dana


def test_data_center_user_search_finds_by_name_or_email(make_client: MakeClient) -> None:
    client = make_client(deployment_type="Server")
    for username in ("dana", "dana@example.com", "DANA"):
        found = call(client, "GET", f"{V2}/user/search", query_string={"username": username}).get_json()
        assert [u["name"] for u in found] == ["dana"], username
    assert call(client, "GET", f"{V2}/user/search", query_string={"username": "nobody"}).get_json() == []
    assert_error(call(client, "GET", f"{V2}/user/search"), 400)


@pytest.mark.parametrize("ref", [{"name": "dana"}, {"name": "Dana"}, {"key": "JIRAUSER10100"}])
def test_data_center_takes_a_name_or_a_key(make_client: MakeClient, ref: Json) -> None:
    client = make_client(deployment_type="Server")
    key = create(client, assignee=ref, reporter={"name": "sam"})
    fields = call(client, "GET", f"{V2}/issue/{key}").get_json()["fields"]
    assert (fields["assignee"]["name"], fields["reporter"]["name"]) == ("dana", "sam")


@pytest.mark.parametrize(("deployment", "field_id", "ref", "message"), [
    ("Server", "assignee", {"accountId": DANA_ACCOUNT}, "not by 'accountId'"),
    ("Server", "reporter", {"accountId": DANA_ACCOUNT}, "not by 'accountId'"),
    ("Server", "assignee", {"name": "dana@example.com"}, "User 'dana@example.com' does not exist."),
    ("Server", "assignee", {"key": "dana"}, "User 'dana' does not exist."),
    ("Server", "assignee", "dana", "expected Object containing a 'name' property"),
    ("Cloud", "assignee", {"name": "dana"}, "GDPR strict mode"),
    ("Cloud", "reporter", {"name": "dana"}, "GDPR strict mode"),
    ("Cloud", "assignee", {"key": "JIRAUSER10100"}, "GDPR strict mode"),
    ("Cloud", "assignee", {"accountId": "dana"}, "Specify a valid value for the user"),
])
def test_the_other_deployments_identifier_is_refused_naming_the_field(
        make_client: MakeClient, deployment: str, field_id: str, ref: object, message: str) -> None:
    client = make_client(deployment_type=deployment)
    body = assert_error(call(client, "POST", f"{V2}/issue", new_issue(**{field_id: ref})), 400)
    assert list(body["errors"]) == [field_id] and message in body["errors"][field_id]
    key = create(client)
    edited = assert_error(call(client, "PUT", f"{V2}/issue/{key}", {"fields": {field_id: ref}}), 400)
    assert list(edited["errors"]) == [field_id]
    update = {"update": {field_id: [{"set": ref}]}}
    assert list(assert_error(call(client, "PUT", f"{V2}/issue/{key}", update), 400)["errors"]) == [field_id]
