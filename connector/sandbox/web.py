"""Request plumbing shared by the route modules: the current app's state, URLs, the authenticated caller,
JSON bodies and parameters, authentication (HTTP basic or a Bearer PAT) and Jira-style error answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from connector.sandbox.errors import JiraError, JsonDict
from connector.sandbox.state import SandboxState

EXTENSION = "jira_sandbox"
API = "/rest/api/2"
ANONYMOUS_PATHS = frozenset({f"{API}/serverInfo"})
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
BAD_CREDENTIALS = "Client must be authenticated to access this resource."


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
