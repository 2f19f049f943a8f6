"""HTTP face of the Jira sandbox: the REST API v2 routes, the /_sandbox control API and the fault middleware.

The endpoint list and the control API are documented in the package docstring (`connector.sandbox`).
Shapes follow Atlassian's published OpenAPI description (v3 paths, with v2's plain-string description
and comment body).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import socket
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, NoReturn

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from connector.sandbox.state import (
    COMPONENTS,
    FIELDS,
    ISSUE_TYPES,
    PRIORITIES,
    PROJECT_ID,
    RESOLUTIONS,
    SEVERITIES,
    STATUS_CATEGORIES,
    STATUSES,
    Comment,
    Decision,
    Fault,
    FieldSpec,
    Issue,
    JiraError,
    JsonDict,
    RemoteLink,
    SandboxConfig,
    SandboxState,
    Transition,
    User,
    as_list,
    named,
    status,
    transitions_from,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Headers = list[tuple[str, str]]
Write = Callable[[bytes], object]

EXTENSION = "jira_sandbox"
API = "/rest/api/2"
ANONYMOUS_PATHS = frozenset({f"{API}/serverInfo"})
MAX_LOGGED_BODY = 256 * 1024
ALL_FIELDS = frozenset(spec.id for spec in FIELDS)
NAVIGABLE_FIELDS = frozenset(spec.id for spec in FIELDS if spec.navigable)
AVATAR_SIZES = ("48x48", "24x24", "16x16", "32x32")
ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
BAD_CREDENTIALS = "Client must be authenticated to access this resource."
LEGACY_SEARCH_GONE = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
                      "A full migration guideline is available at "
                      "https://developer.atlassian.com/changelog/#CHANGE-2046")

rest = Blueprint("jira_rest", __name__, url_prefix=API)
misc = Blueprint("jira_misc", __name__)
control = Blueprint("jira_sandbox_control", __name__, url_prefix="/_sandbox")


def create_sandbox_app(state: SandboxState | None = None, **options: Any) -> Flask:
    """A Flask app serving the sandbox; `options` are `SandboxConfig` fields (used when no state is given)."""
    if state is not None and options:
        raise TypeError("pass either a SandboxState or configuration options, not both")
    state = state or SandboxState(SandboxConfig(**options))
    app = Flask(__name__)
    app.extensions[EXTENSION] = state
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.before_request(check_request)
    for blueprint in (rest, misc, control):
        app.register_blueprint(blueprint)
    app.register_error_handler(JiraError, jira_error)
    app.register_error_handler(HTTPException, http_error)
    app.wsgi_app = FaultMiddleware(app.wsgi_app, state)  # type: ignore[method-assign]
    return app


# --------------------------------------------------------------------------- request plumbing


def sandbox() -> SandboxState:
    state: SandboxState = current_app.extensions[EXTENSION]
    return state


def base() -> str:
    return sandbox().config.base_url or request.host_url.rstrip("/")


def api(path: str) -> str:
    return f"{base()}{API}/{path}"


def actor() -> str:
    """Account id of the authenticated caller."""
    account_id: str = g.sandbox_actor
    return account_id


def jira_time(epoch: float) -> str:
    """Jira's timestamp format: 2024-05-01T10:15:30.123+0000."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def body_object() -> JsonDict:
    """The request's JSON object body ({} when empty), or a Jira-style 400."""
    raw = request.get_data()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise JiraError(400, [f"Unexpected character in the JSON request body: {exc}"]) from None
    if not isinstance(data, dict):
        raise JiraError(400, ["Can not deserialize the request body: expected a JSON object."])
    return data


def check_request() -> ResponseReturnValue | None:
    """Authentication and content type for /rest/ requests (serverInfo is anonymous, like Jira's)."""
    if not request.path.startswith("/rest/"):
        return None
    if request.path not in ANONYMOUS_PATHS:
        account_id = authenticate(sandbox())
        if account_id is None:
            return unauthorized()
        g.sandbox_actor = account_id
    if request.method in ("POST", "PUT") and request.content_length and request.mimetype != "application/json":
        raise JiraError(415, ["Unsupported Media Type: send the body as Content-Type: application/json."])
    return None


def authenticate(state: SandboxState) -> str | None:
    """HTTP basic (email or username + API token) or a Bearer personal access token."""
    auth = request.authorization
    if auth is None:
        return None
    config, me = state.config, state.catalog.me
    if auth.type == "basic":
        accepted = auth.username in (config.email, me.name) and auth.password == config.token
    else:
        accepted = auth.type == "bearer" and auth.token == config.pat
    return me.account_id if accepted else None


def unauthorized() -> Response:
    attempted = request.authorization is not None
    response = jsonify(errorMessages=[BAD_CREDENTIALS if attempted else NOT_AUTHENTICATED], errors={})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Basic realm="protected-area"'
    if attempted:
        response.headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
    return response


def jira_error(exc: JiraError) -> Response:
    response = jsonify(exc.body())
    response.status_code = exc.status
    return response


def http_error(exc: HTTPException) -> ResponseReturnValue:
    """Routing errors: Jira-style JSON under /rest/, werkzeug's default elsewhere."""
    if not request.path.startswith("/rest/"):
        return exc.get_response()
    message = f"null for uri: {request.url}" if exc.code == 404 else (exc.description or exc.name)
    response = jsonify(errorMessages=[message], errors={})
    response.status_code = exc.code or 500
    return response


def no_content() -> Response:
    return Response(status=204)


# --------------------------------------------------------------------------- rendering


def avatar_urls(kind: str, ident: str) -> dict[str, str]:
    return {size: f"{base()}/secure/{kind}avatar?size={size}&avatarId={ident}" for size in AVATAR_SIZES}


def user_json(user: User) -> JsonDict:
    """A user as Jira shows it: Cloud by accountId, Server/Data Center by username."""
    if sandbox().config.cloud:
        ident: JsonDict = {"self": api(f"user?accountId={user.account_id}"), "accountId": user.account_id,
                           "accountType": "atlassian"}
    else:
        ident = {"self": api(f"user?username={user.name}"), "name": user.name, "key": user.name}
    return {**ident, "emailAddress": user.email, "avatarUrls": avatar_urls("user", "10122"),
            "displayName": user.display_name, "active": True, "timeZone": user.time_zone}


def user_ref(account_id: str) -> JsonDict | None:
    user = sandbox().catalog.user(account_id)
    return user_json(user) if user else None


def status_json(status_id: str) -> JsonDict:
    found = status(status_id)
    category = STATUS_CATEGORIES[found.category]
    return {"self": api(f"status/{found.id}"), "description": found.description,
            "iconUrl": f"{base()}/images/icons/statuses/generic.png", "name": found.name, "id": found.id,
            "statusCategory": {"self": api(f"statuscategory/{category['id']}"), **category}}


def priority_json(priority_id: str) -> JsonDict:
    found = named(PRIORITIES, priority_id)
    return {"self": api(f"priority/{found.id}"), "statusColor": found.detail, "description": found.name,
            "iconUrl": f"{base()}/images/icons/priorities/{found.name.lower()}.svg", "name": found.name,
            "id": found.id, "isDefault": found.id == "3"}


def issuetype_json(type_id: str) -> JsonDict:
    found = named(ISSUE_TYPES, type_id)
    return {"self": api(f"issuetype/{found.id}"), "id": found.id, "name": found.name, "subtask": False,
            "iconUrl": f"{base()}/secure/viewavatar?size=medium&avatarId=10303&avatarType=issuetype",
            "avatarId": 10303, "hierarchyLevel": 0}


def resolution_json(resolution_id: str) -> JsonDict:
    found = named(RESOLUTIONS, resolution_id)
    return {"self": api(f"resolution/{found.id}"), "id": found.id, "description": found.detail,
            "name": found.name}


def component_json(component_id: str) -> JsonDict:
    found = named(COMPONENTS, component_id)
    return {"self": api(f"component/{found.id}"), "id": found.id, "name": found.name}


def option_json(option_id: str) -> JsonDict:
    found = named(SEVERITIES, option_id)
    return {"self": api(f"customFieldOption/{found.id}"), "value": found.name, "id": found.id}


def project_ref_json() -> JsonDict:
    config = sandbox().config
    return {"self": api(f"project/{PROJECT_ID}"), "id": PROJECT_ID, "key": config.project_key,
            "name": config.project_name, "projectTypeKey": "software", "simplified": False,
            "avatarUrls": avatar_urls("project", "10324")}


def project_json() -> JsonDict:
    state = sandbox()
    return {"expand": "description,lead,issueTypes,url,projectKeys,permissions,insight", **project_ref_json(),
            "description": "Jira sandbox project for nc-connector.", "lead": user_json(state.catalog.me),
            "components": [component_json(c.id) for c in COMPONENTS],
            "issueTypes": [issuetype_json(t.id) for t in ISSUE_TYPES], "assigneeType": "UNASSIGNED",
            "versions": [], "roles": {}, "style": "classic", "isPrivate": False, "properties": {}}


REQUIRED_ON_CREATE = frozenset({"project", "issuetype", "summary"})


def field_json(spec: FieldSpec) -> JsonDict:
    clauses = [f"cf[{spec.schema['customId']}]"] if spec.custom else [spec.id]
    return {"id": spec.id, "key": spec.id, "name": spec.name, "custom": spec.custom,
            "orderable": bool(spec.screens), "navigable": spec.navigable, "searchable": spec.kind != "comments",
            "clauseNames": [*clauses, *spec.clause_names], "schema": dict(spec.schema)}


def comment_json(issue: Issue, comment: Comment) -> JsonDict:
    author = user_ref(comment.author)
    body: JsonDict = {"self": api(f"issue/{issue.id}/comment/{comment.id}"), "id": comment.id, "author": author,
                      "body": comment.body, "updateAuthor": author, "created": jira_time(comment.created),
                      "updated": jira_time(comment.updated), "jsdPublic": True}
    if comment.visibility is not None:
        body["visibility"] = comment.visibility
    return body


def comments_page(issue: Issue, start: int = 0, limit: int | None = None) -> JsonDict:
    chosen = issue.comments[start:] if limit is None else issue.comments[start:start + limit]
    return {"comments": [comment_json(issue, c) for c in chosen], "maxResults": len(chosen),
            "total": len(issue.comments), "startAt": start}


def remote_link_json(issue: Issue, link: RemoteLink) -> JsonDict:
    body: JsonDict = {"id": link.id, "self": api(f"issue/{issue.key}/remotelink/{link.id}")}
    if link.global_id is not None:
        body["globalId"] = link.global_id
    body["application"] = link.application
    if link.relationship is not None:
        body["relationship"] = link.relationship
    body["object"] = link.object
    return body


RENDERERS: dict[str, Callable[[Any], Any]] = {
    "priority": priority_json, "status": status_json, "resolution": resolution_json, "user": user_ref,
    "issuetype": issuetype_json, "project": lambda _: project_ref_json(), "datetime": jira_time,
    "option": option_json, "components": lambda ids: [component_json(i) for i in ids],
}


def field_value(spec: FieldSpec, issue: Issue) -> Any:
    if spec.kind == "comments":
        return comments_page(issue)
    value = issue.fields.get(spec.id)
    renderer = RENDERERS.get(spec.kind)
    return renderer(value) if renderer is not None and value is not None else value


def issue_json(issue: Issue, wanted: Iterable[str] = ALL_FIELDS, expand: str = "") -> JsonDict:
    selected = set(wanted)
    chosen = [spec for spec in FIELDS if spec.id in selected]
    body: JsonDict = {"expand": ISSUE_EXPAND, "id": issue.id, "self": api(f"issue/{issue.id}"), "key": issue.key,
                      "fields": {spec.id: field_value(spec, issue) for spec in chosen}}
    expanded = {part.strip() for part in expand.split(",")}
    if "names" in expanded:
        body["names"] = {spec.id: spec.name for spec in chosen}
    if "schema" in expanded:
        body["schema"] = {spec.id: dict(spec.schema) for spec in chosen}
    if "transitions" in expanded:
        body["transitions"] = [transition_json(t) for t in transitions_from(issue.fields["status"])]
    return body


def transition_json(transition: Transition) -> JsonDict:
    return {"id": transition.id, "name": transition.name, "to": status_json(transition.to),
            "hasScreen": transition.screen, "isGlobal": False, "isInitial": False, "isAvailable": True,
            "isConditional": False, "isLooped": False}


def wanted_fields(values: Iterable[Any], default: str) -> frozenset[str]:
    """Field ids selected by a `fields` parameter: ids, *all, *navigable, -excluded (id/key select none)."""
    tokens = [t.strip() for value in values for t in str(value).split(",") if t.strip()] or [default]
    chosen: set[str] = set()
    for token in tokens:
        if token == "*all":
            chosen |= ALL_FIELDS
        elif token == "*navigable":
            chosen |= NAVIGABLE_FIELDS
        elif token in ALL_FIELDS:
            chosen.add(token)
    return frozenset(chosen - {t[1:] for t in tokens if t.startswith("-")})


# --------------------------------------------------------------------------- Jira REST API v2


@rest.get("/serverInfo")
def server_info() -> ResponseReturnValue:
    state = sandbox()
    version = (1001, 0, 0) if state.config.cloud else (9, 12, 15)
    return jsonify({
        "baseUrl": base(), "version": ".".join(map(str, version)) + ("-SNAPSHOT" if state.config.cloud else ""),
        "versionNumbers": list(version), "deploymentType": state.config.deployment_type,
        "buildNumber": 100285 if state.config.cloud else 9120015, "buildDate": "2025-01-15T00:00:00.000+0000",
        "serverTime": jira_time(state.clock()), "scmInfo": "nc-connector-sandbox", "serverTitle": "Jira Sandbox",
    })


@rest.get("/myself")
def myself() -> ResponseReturnValue:
    return jsonify({**user_json(sandbox().catalog.me), "locale": "en_US", "expand": "groups,applicationRoles",
                    "groups": {"size": 1, "items": []}, "applicationRoles": {"size": 1, "items": []}})


@rest.get("/user")
def get_user() -> ResponseReturnValue:
    ref = request.args.get("accountId") or request.args.get("username") or request.args.get("key") or ""
    user = sandbox().catalog.find_user(ref)
    if user is None:
        raise JiraError(404, [f"The user with the identifier '{ref}' does not exist."])
    return jsonify(user_json(user))


@rest.get("/user/search")
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


@rest.get("/field")
def fields() -> ResponseReturnValue:
    return jsonify([field_json(spec) for spec in FIELDS])


@rest.get("/project")
def projects() -> ResponseReturnValue:
    return jsonify([project_json()])


@rest.get("/project/<ref>")
def project(ref: str) -> ResponseReturnValue:
    if not sandbox().catalog.project_matches(ref.upper()):
        raise JiraError(404, [f"No project could be found with key '{ref}'."])
    return jsonify(project_json())


# The sandbox's one user holds every project permission (for `mappings check --live`).
PERMISSIONS = ("BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "TRANSITION_ISSUES", "ADD_COMMENTS",
               "LINK_ISSUES", "ASSIGN_ISSUES", "RESOLVE_ISSUES")


@rest.get("/mypermissions")
def my_permissions() -> ResponseReturnValue:
    asked = [p for p in request.args.get("permissions", "").split(",") if p] or list(PERMISSIONS)
    project_key = request.args.get("projectKey")
    if project_key and not sandbox().catalog.project_matches(project_key.upper()):
        raise JiraError(404, [f"No project could be found with key '{project_key}'."])
    return jsonify({"permissions": {
        key: {"id": str(index), "key": key, "name": key.replace("_", " ").title(), "type": "PROJECT",
              "description": "", "havePermission": key in PERMISSIONS}
        for index, key in enumerate(asked, 10)}})


@rest.get("/issue/createmeta/<project_ref>/issuetypes/<type_id>")
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


@rest.get("/priority")
def priorities() -> ResponseReturnValue:
    return jsonify([priority_json(p.id) for p in PRIORITIES])


@rest.get("/issuetype")
def issue_types() -> ResponseReturnValue:
    return jsonify([issuetype_json(t.id) for t in ISSUE_TYPES])


@rest.get("/resolution")
def resolutions() -> ResponseReturnValue:
    return jsonify([resolution_json(r.id) for r in RESOLUTIONS])


@rest.get("/status")
def statuses() -> ResponseReturnValue:
    return jsonify([status_json(s.id) for s in STATUSES])


@rest.post("/issue")
def create_issue() -> ResponseReturnValue:
    issue = sandbox().create_issue(body_object().get("fields"), actor())
    return jsonify({"id": issue.id, "key": issue.key, "self": api(f"issue/{issue.id}")}), 201


@rest.get("/issue/<ref>")
def get_issue(ref: str) -> ResponseReturnValue:
    issue = sandbox().issue(ref)
    wanted = wanted_fields(request.args.getlist("fields"), "*all")
    return jsonify(issue_json(issue, wanted, request.args.get("expand", "")))


@rest.put("/issue/<ref>")
def edit_issue(ref: str) -> ResponseReturnValue:
    body = body_object()
    issue = sandbox().update_issue(ref, body.get("fields"), body.get("update"), actor())
    if request.args.get("returnIssue", "").lower() == "true":
        return jsonify(issue_json(issue))
    return no_content()


@rest.delete("/issue/<ref>")
def delete_issue(ref: str) -> ResponseReturnValue:
    sandbox().delete_issue(ref)
    return no_content()


@rest.get("/issue/<ref>/transitions")
def get_transitions(ref: str) -> ResponseReturnValue:
    _, available = sandbox().transitions(ref)
    only = request.args.get("transitionId")
    chosen = [transition_json(t) for t in available if only is None or t.id == only]
    return jsonify({"expand": "transitions", "transitions": chosen})


@rest.post("/issue/<ref>/transitions")
def do_transition(ref: str) -> ResponseReturnValue:
    sandbox().transition(ref, body_object(), actor())
    return no_content()


@rest.get("/issue/<ref>/comment")
def get_comments(ref: str) -> ResponseReturnValue:
    issue = sandbox().issue(ref)
    start = int_param(request.args, "startAt", 0)
    limit = int_param(request.args, "maxResults", 5000)
    return jsonify(comments_page(issue, start, limit))


@rest.post("/issue/<ref>/comment")
def add_comment(ref: str) -> ResponseReturnValue:
    body = body_object()
    issue, comment = sandbox().add_comment(ref, body.get("body"), actor(), body.get("visibility"))
    return jsonify(comment_json(issue, comment)), 201


@rest.get("/issue/<ref>/remotelink")
def get_remote_links(ref: str) -> ResponseReturnValue:
    issue = sandbox().issue(ref)
    wanted = request.args.get("globalId")
    links = [lk for lk in issue.remote_links if wanted is None or lk.global_id == wanted]
    return jsonify([remote_link_json(issue, lk) for lk in links])


@rest.post("/issue/<ref>/remotelink")
def upsert_remote_link(ref: str) -> ResponseReturnValue:
    issue, link, created = sandbox().upsert_remote_link(ref, body_object())
    return jsonify({"id": link.id, "self": api(f"issue/{issue.key}/remotelink/{link.id}")}), 201 if created else 200


@rest.get("/issue/<ref>/remotelink/<link_id>")
def get_remote_link(ref: str, link_id: str) -> ResponseReturnValue:
    issue, link = sandbox().remote_link(ref, link_id)
    return jsonify(remote_link_json(issue, link))


@rest.delete("/issue/<ref>/remotelink/<link_id>")
def delete_remote_link(ref: str, link_id: str) -> ResponseReturnValue:
    sandbox().delete_remote_link(ref, link_id)
    return no_content()


def search_params() -> JsonDict:
    """Search parameters from the query string (GET) or the JSON body (POST)."""
    if request.method == "POST":
        return body_object()
    args = request.args
    return {"jql": args.get("jql", ""), "startAt": args.get("startAt"), "maxResults": args.get("maxResults"),
            "fields": args.getlist("fields"), "validateQuery": args.get("validateQuery"),
            "nextPageToken": args.get("nextPageToken"), "expand": args.get("expand", ""),
            "reconcileIssues": [x for v in args.getlist("reconcileIssues") for x in v.split(",") if x]}


def int_param(params: Any, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise JiraError(400, [f"The value '{value}' is invalid for the '{name}' parameter."])
    return number


@rest.route("/search", methods=["GET", "POST"])
def search() -> ResponseReturnValue:
    """The classic paged search (startAt/total); removed from Jira Cloud, see `legacy_search`."""
    state = sandbox()
    if not state.config.legacy_search:
        raise JiraError(410, [LEGACY_SEARCH_GONE])
    params = search_params()
    start = int_param(params, "startAt", 0)
    limit = min(int_param(params, "maxResults", 50), 100 if state.config.cloud else 1000)
    strict = str(params.get("validateQuery") or "strict").lower() not in ("false", "none", "warn")
    hits = state.search(str(params.get("jql") or ""), actor(), strict=strict)
    wanted = wanted_fields(as_list(params.get("fields")), "*navigable")
    expand = str(params.get("expand") or "")
    return jsonify({"expand": "schema,names", "startAt": start, "maxResults": limit, "total": len(hits),
                    "issues": [issue_json(i, wanted, expand) for i in hits[start:start + limit]]})


@rest.route("/search/jql", methods=["GET", "POST"])
def search_jql() -> ResponseReturnValue:
    """The enhanced search: token paging, no total, `id` only by default, `reconcileIssues` read fresh."""
    state = sandbox()
    params = search_params()
    offset = decode_page_token(params.get("nextPageToken"))
    wanted = wanted_fields(as_list(params.get("fields")), "id")
    limit = min(int_param(params, "maxResults", 50), 100 if wanted else 5000)
    reconcile = [str(x) for x in as_list(params.get("reconcileIssues"))]
    hits = state.search(str(params.get("jql") or ""), actor(), reconcile=reconcile, bounded=True)
    page, last = hits[offset:offset + limit], offset + limit >= len(hits)
    expand = str(params.get("expand") or "")
    body: JsonDict = {"issues": [issue_json(i, wanted, expand) for i in page], "isLast": last}
    if not last:
        body["nextPageToken"] = encode_page_token(offset + limit)
    return jsonify(body)


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sandbox-page:{offset}".encode()).decode()


def decode_page_token(token: Any) -> int:
    if not token:
        return 0
    try:
        prefix, _, offset = base64.urlsafe_b64decode(str(token)).decode().partition(":")
        if prefix == "sandbox-page" and offset.isdigit():
            return int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise JiraError(400, [f"The nextPageToken '{token}' is invalid."])


@misc.get("/rest/applinks/latest/listApplicationlinks")
def application_links() -> ResponseReturnValue:
    """Asked by the `jira` client's add_remote_link; an empty list keeps it from warning."""
    return jsonify({"list": []})


@misc.get("/rest/auth/1/session")
def auth_session() -> ResponseReturnValue:
    me = sandbox().catalog.me
    return jsonify({"self": api(f"user?username={me.name}"), "name": me.name,
                    "loginInfo": {"loginCount": 1, "previousLoginTime": jira_time(sandbox().clock())}})


# --------------------------------------------------------------------------- /_sandbox control API


@control.errorhandler(ValueError)
def control_error(exc: ValueError) -> ResponseReturnValue:
    return jsonify(error=str(exc)), 400


@control.get("/health")
def health() -> ResponseReturnValue:
    return jsonify(status="ok", deploymentType=sandbox().config.deployment_type)


@control.get("/issues")
def all_issues() -> ResponseReturnValue:
    return jsonify(issues=[
        {**issue_json(issue), "remoteLinks": [remote_link_json(issue, lk) for lk in issue.remote_links]}
        for issue in sandbox().issues()
    ])


@control.get("/requests")
def request_log() -> ResponseReturnValue:
    """The request log, optionally filtered by ?method=, ?path= (glob) and ?since= (sequence number);
    ?grace=S: requests within S seconds of a Retry-After answer count as already in flight."""
    state = sandbox()
    method, pattern = request.args.get("method", "*").upper(), request.args.get("path", "*")
    since = int_param(request.args, "since", 0)
    records = [r.to_json() for r in state.requests()
               if r.seq > since and method in ("*", r.method) and fnmatchcase(r.path, pattern)]
    same_path = request.args.get("samePath", "").lower() == "true"
    try:
        grace = float(request.args.get("grace", "0"))
    except ValueError:
        raise JiraError(400, ["grace must be a number of seconds"]) from None
    violations = state.retry_after_violations(same_path=same_path, grace=grace)
    return jsonify(requests=records, retryAfterViolations=violations)


@control.route("/faults", methods=["GET", "POST"])
def faults() -> ResponseReturnValue:
    state = sandbox()
    if request.method == "GET":
        return jsonify(state.faults())
    spec = request.get_json(force=True, silent=True)
    if spec is None:
        raise ValueError("expected a JSON object body")
    return jsonify(state.configure_faults(spec))


@control.post("/reset")
def reset() -> ResponseReturnValue:
    sandbox().reset()
    return jsonify(status="reset")


@control.get("/stats")
def stats() -> ResponseReturnValue:
    return jsonify(sandbox().stats())


# --------------------------------------------------------------------------- fault middleware


class FaultMiddleware:
    """WSGI middleware in front of Flask: logs /rest/ requests, applies latency and injected faults."""

    def __init__(self, app: WSGIApplication, state: SandboxState) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/rest/"):
            return self.app(environ, start_response)
        decision = self.state.begin_request(environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""),
                                            logged_body(environ))
        if decision.latency > 0:
            self.state.sleep(decision.latency)
        fault = decision.fault
        if fault is not None and fault.kind == "slow":
            self.state.sleep(fault.seconds)
        if fault is None or fault.kind == "slow":
            return self._forward(environ, start_response, decision)
        if fault.kind in ("drop", "drop_after"):
            self._drop(environ, decision, process=fault.kind == "drop_after")
        response = refusal(fault, self.state.clock())
        self.state.end_request(decision, response.status_code, retry_after=fault.retry_after)
        return response(environ, start_response)

    def _forward(self, environ: WSGIEnvironment, start_response: StartResponse,
                 decision: Decision) -> Iterable[bytes]:
        statuses: list[int] = []
        extra = decision.quota.headers() if decision.quota is not None else []  # X-RateLimit-* of a budget

        def capture(status_line: str, headers: Headers, exc_info: Any = None) -> Write:
            statuses.append(int(status_line.split()[0]))
            return start_response(status_line, [*headers, *extra], exc_info)

        result = self.app(environ, capture)
        self.state.end_request(decision, statuses[-1] if statuses else None)
        return result

    def _drop(self, environ: WSGIEnvironment, decision: Decision, *, process: bool) -> NoReturn:
        """Close the connection without an answer; with `process`, after the request took effect."""
        statuses: list[int] = []

        def capture(status_line: str, headers: Headers, exc_info: Any = None) -> Write:
            statuses.append(int(status_line.split()[0]))
            return lambda data: None

        if process:
            result = self.app(environ, capture)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        self.state.end_request(decision, statuses[-1] if statuses else None, delivered=False)
        connection = environ.get("werkzeug.socket")
        if isinstance(connection, socket.socket):
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError("jira sandbox: connection dropped by an injected fault")


def logged_body(environ: WSGIEnvironment) -> Any:
    """The request body for the log (parsed JSON when possible); the stream is put back for Flask."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0 or length > MAX_LOGGED_BODY:
        return None
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def refusal(fault: Fault, now: float) -> Response:
    """The 429 or 503 answer for `fault`, with Retry-After and (for 429) Jira Cloud's X-RateLimit headers."""
    status_code = fault.status or 503
    message = "Rate limit exceeded." if status_code == 429 else "Service Unavailable"
    response = Response(json.dumps({"errorMessages": [message], "errors": {}}), status=status_code,
                        mimetype="application/json")
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    if status_code == 429:
        limit, window = fault.limit or 100, int(fault.window or 60)
        response.headers.update({"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0",
                                 "X-RateLimit-FillRate": str(limit), "X-RateLimit-Interval-Seconds": str(window),
                                 "X-RateLimit-NearLimit": "true", "RateLimit-Reason": fault.reason})
        if fault.retry_after is not None:
            reset_at = datetime.fromtimestamp(now + fault.retry_after, UTC)
            response.headers["X-RateLimit-Reset"] = reset_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return response
