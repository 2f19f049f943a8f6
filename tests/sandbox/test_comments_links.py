"""The sandbox's comments and remote links (upserted by globalId)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.sandbox.conftest import EMAIL, V2, V3, assert_error, assert_response, assert_schema, call, create, spec


def test_comments(client: FlaskClient) -> None:
    key = create(client)
    path = f"{V2}/issue/{key}/comment"
    first = assert_response(call(client, "POST", path, {"body": "Plain *wiki* text"}),
                            f"{V3}/issue/{{issueIdOrKey}}/comment", 201)
    assert (first["body"], first["author"]["emailAddress"]) == ("Plain *wiki* text", EMAIL)
    assert first["self"] == f"http://localhost/rest/api/2/issue/10001/comment/{first['id']}"
    restricted = {"body": "internal", "visibility": {"type": "role", "value": "Administrators"}}
    assert call(client, "POST", path, restricted).get_json()["visibility"]["value"] == "Administrators"
    page = assert_response(call(client, "GET", path), f"{V3}/issue/{{issueIdOrKey}}/comment", 200)
    assert (page["total"], [c["body"] for c in page["comments"]]) == (2, ["Plain *wiki* text", "internal"])
    assert call(client, "GET", path, query_string={"startAt": 1, "maxResults": 1}).get_json()["comments"][0][
        "body"] == "internal"
    adf = {"body": {"type": "doc", "version": 1, "content": []}}
    assert "comment" in assert_error(call(client, "POST", path, adf), 400)["errors"]
    assert assert_error(call(client, "POST", path, {"body": "  "}), 400)["errors"] == {
        "comment": "Comment body can not be empty!"}


def test_comment_properties_are_kept_and_shown_only_when_expanded(client: FlaskClient) -> None:
    key = create(client)
    path = f"{V2}/issue/{key}/comment"
    ours = [{"key": "nc-connector", "value": {"commentKey": "c-1001"}}]
    assert_response(call(client, "POST", path, {"body": "Root cause found.", "properties": ours}),
                    f"{V3}/issue/{{issueIdOrKey}}/comment", 201)
    plain = call(client, "GET", path).get_json()["comments"][0]
    assert "properties" not in plain  # an unrequested expansion is left out, like Jira
    page = assert_response(call(client, "GET", path, query_string={"expand": "properties"}),
                           f"{V3}/issue/{{issueIdOrKey}}/comment", 200)
    assert page["comments"][0]["properties"] == ours
    for bad in ([{"value": 1}], {"key": "x"}, [{"key": "", "value": 1}]):
        assert assert_error(call(client, "POST", path, {"body": "x", "properties": bad}), 400)["errorMessages"]


def test_remote_links_upsert_by_global_id(client: FlaskClient) -> None:
    key = create(client)
    path = f"{V2}/issue/{key}/remotelink"
    v3 = f"{V3}/issue/{{issueIdOrKey}}/remotelink"
    link = {"globalId": "qualio:NC-7", "application": {"type": "com.qualio", "name": "Qualio"},
            "relationship": "tracks", "object": {"url": "https://acme.qualio.com/nc/7", "title": "NC-7"}}
    first = assert_response(call(client, "POST", path, link), v3, 201)
    assert first == {"id": 10001, "self": "http://localhost/rest/api/2/issue/QA-1/remotelink/10001"}
    renamed = {**link, "object": {"url": "https://acme.qualio.com/nc/7", "title": "NC-7: seal wear"}}
    assert assert_response(call(client, "POST", path, renamed), v3, 200) == first
    other = assert_response(call(client, "POST", path, {"object": {"url": "https://x.example", "title": "x"}}), v3, 201)
    assert other["id"] != first["id"]

    links = call(client, "GET", path).get_json()
    for item in links:  # the spec documents one RemoteIssueLink; Jira answers a list of them
        assert_schema(item, spec().component("RemoteIssueLink"))
    assert [(lk["id"], lk["object"]["title"]) for lk in links] == [(10001, "NC-7: seal wear"), (other["id"], "x")]
    assert [lk["id"] for lk in call(client, "GET", f"{path}?globalId=qualio:NC-7").get_json()] == [10001]
    single = call(client, "GET", f"{path}/10001")
    assert_response(single, f"{V3}/issue/{{issueIdOrKey}}/remotelink/{{linkId}}", 200)
    assert call(client, "DELETE", f"{path}/{other['id']}").status_code == 204
    assert_error(call(client, "GET", f"{path}/{other['id']}"), 404)
    stats = call(client, "GET", "/_sandbox/stats").get_json()
    assert (stats["remoteLinksCreated"], stats["remoteLinksUpdated"], stats["remoteLinksDeleted"]) == (2, 1, 1)


def test_remote_link_needs_url_and_title(client: FlaskClient) -> None:
    key = create(client)
    errors = assert_error(call(client, "POST", f"{V2}/issue/{key}/remotelink", {"object": {"title": "t"}}), 400)
    assert set(errors["errors"]) == {"url"}
    assert set(assert_error(call(client, "POST", f"{V2}/issue/{key}/remotelink", {}), 400)["errors"]) == {"object"}
