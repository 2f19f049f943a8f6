"""Routes for the server, identity and reference data: serverInfo, myself, users, fields, projects (and
their statuses), permissions, the create screen, priorities, issue types, resolutions and statuses (the
configured workflow's); plus the two non-API
paths the `jira` client asks for (application links, auth session)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from connector.sandbox.errors import JiraError
from connector.sandbox.fields import FIELDS
from connector.sandbox.reference import ISSUE_TYPES, PRIORITIES
from connector.sandbox.render import (
    field_json,
    issuetype_json,
    priority_json,
    project_json,
    resolution_json,
    status_json,
    user_json,
)
from connector.sandbox.web import API, api, base, jira_time, sandbox

routes = Blueprint("jira_reference", __name__, url_prefix=API)
misc = Blueprint("jira_misc", __name__)

REQUIRED_ON_CREATE = frozenset({"project", "issuetype", "summary"})


@routes.get("/serverInfo")
def server_info() -> ResponseReturnValue:
    state = sandbox()
    version = (1001, 0, 0) if state.config.cloud else (9, 12, 15)
    return jsonify({
        "baseUrl": base(), "version": ".".join(map(str, version)) + ("-SNAPSHOT" if state.config.cloud else ""),
        "versionNumbers": list(version), "deploymentType": state.config.deployment_type,
        "buildNumber": 100285 if state.config.cloud else 9120015, "buildDate": "2025-01-15T00:00:00.000+0000",
        "serverTime": jira_time(state.clock()), "scmInfo": "nc-connector-sandbox", "serverTitle": "Jira Sandbox",
    })


@routes.get("/myself")
def myself() -> ResponseReturnValue:
    return jsonify({**user_json(sandbox().catalog.me), "locale": "en_US", "expand": "groups,applicationRoles",
                    "groups": {"size": 1, "items": []}, "applicationRoles": {"size": 1, "items": []}})


@routes.get("/user")
def get_user() -> ResponseReturnValue:
    ref = request.args.get("accountId") or request.args.get("username") or request.args.get("key") or ""
    user = sandbox().catalog.find_user(ref)
    if user is None:
        raise JiraError(404, [f"The user with the identifier '{ref}' does not exist."])
    return jsonify(user_json(user))


@routes.get("/user/search")
def user_search() -> ResponseReturnValue:
    state = sandbox()
    query = (request.args.get("query") or request.args.get("username") or request.args.get("accountId") or "")
    if not query:
        raise JiraError(400, ["One of 'query' or 'accountId' query parameters must be provided."
                              if state.config.cloud else "The username query parameter was not provided"])
    needle = query.lower()
    hits = [u for u in state.catalog.users
            if needle == u.account_id.lower() or any(needle in text.lower() for text in
                                                     (u.email, u.display_name, u.name))]
    return jsonify([user_json(u) for u in hits])


@routes.get("/field")
def fields() -> ResponseReturnValue:
    return jsonify([field_json(spec) for spec in FIELDS])


@routes.get("/project")
def projects() -> ResponseReturnValue:
    return jsonify([project_json(project_id) for project_id, _, _ in sandbox().projects()])


def known_project(ref: str) -> str:
    """The id of the project with id or key `ref` (any case), else Jira's 404."""
    project_id = next((i for i, key, _ in sandbox().projects() if ref.upper() in (i, key)), None)
    if project_id is None:
        raise JiraError(404, [f"No project could be found with key '{ref}'."])
    return project_id


@routes.get("/project/<ref>")
def project(ref: str) -> ResponseReturnValue:
    return jsonify(project_json(known_project(ref)))


@routes.get("/project/<ref>/statuses")
def project_statuses(ref: str) -> ResponseReturnValue:
    """Every issue type of the project with the workflow's statuses (one workflow for all of them)."""
    known_project(ref)
    statuses = [status_json(s.id) for s in sandbox().config.definition.statuses]
    return jsonify([{"self": api(f"issuetype/{t.id}"), "id": t.id, "name": t.name, "subtask": False,
                     "statuses": statuses} for t in ISSUE_TYPES])


# The sandbox's one user holds every project permission (for `mappings check --live`).
PERMISSIONS = ("BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "TRANSITION_ISSUES", "ADD_COMMENTS",
               "LINK_ISSUES", "ASSIGN_ISSUES", "RESOLVE_ISSUES")


@routes.get("/mypermissions")
def my_permissions() -> ResponseReturnValue:
    asked = [p for p in request.args.get("permissions", "").split(",") if p] or list(PERMISSIONS)
    project_key = request.args.get("projectKey")
    if project_key and not sandbox().catalog.project_matches(project_key.upper()):
        raise JiraError(404, [f"No project could be found with key '{project_key}'."])
    return jsonify({"permissions": {
        key: {"id": str(index), "key": key, "name": key.replace("_", " ").title(), "type": "PROJECT",
              "description": "", "havePermission": key in PERMISSIONS}
        for index, key in enumerate(asked, 10)}})


@routes.get("/issue/createmeta/<project_ref>/issuetypes/<type_id>")
def create_meta(project_ref: str, type_id: str) -> ResponseReturnValue:
    """The fields of the create screen (Cloud's `fields`; Data Center calls the list `values`)."""
    if not sandbox().catalog.project_matches(project_ref.upper()):
        raise JiraError(404, [f"No project could be found with key '{project_ref}'."])
    if not any(t.id == type_id for t in ISSUE_TYPES):
        raise JiraError(404, [f"Issue type with id '{type_id}' does not exist."])
    on_screen = [spec for spec in FIELDS if "create" in spec.screens]
    metas = [{"fieldId": spec.id, "key": spec.id, "name": spec.name, "required": spec.id in REQUIRED_ON_CREATE,
              "schema": dict(spec.schema), "operations": ["set"], "hasDefaultValue": False} for spec in on_screen]
    body = {"startAt": 0, "maxResults": len(metas), "total": len(metas), "fields": metas}
    if not sandbox().config.cloud:
        body = {"startAt": 0, "maxResults": len(metas), "total": len(metas), "isLast": True, "values": metas}
    return jsonify(body)


@routes.get("/priority")
def priorities() -> ResponseReturnValue:
    return jsonify([priority_json(p.id) for p in PRIORITIES])


@routes.get("/issuetype")
def issue_types() -> ResponseReturnValue:
    return jsonify([issuetype_json(t.id) for t in ISSUE_TYPES])


@routes.get("/resolution")
def resolutions() -> ResponseReturnValue:
    return jsonify([resolution_json(r.id) for r in sandbox().config.definition.resolutions])


@routes.get("/status")
def statuses() -> ResponseReturnValue:
    return jsonify([status_json(s.id) for s in sandbox().config.definition.statuses])


@misc.get("/rest/applinks/latest/listApplicationlinks")
def application_links() -> ResponseReturnValue:
    """Asked by the `jira` client's add_remote_link; an empty list keeps it from warning."""
    return jsonify({"list": []})


@misc.get("/rest/auth/1/session")
def auth_session() -> ResponseReturnValue:
    me = sandbox().catalog.me
    return jsonify({"self": api(f"user?username={me.name}"), "name": me.name,
                    "loginInfo": {"loginCount": 1, "previousLoginTime": jira_time(sandbox().clock())}})
