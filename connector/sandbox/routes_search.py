"""Routes for search: the classic paged /search (startAt/total, 410 Gone without `legacy_search`) and the
enhanced /search/jql (nextPageToken/isLast, reconcileIssues read fresh)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from connector.sandbox.errors import JiraError, JsonDict
from connector.sandbox.render import issue_json, wanted_fields
from connector.sandbox.search import as_list
from connector.sandbox.web import API, actor, body_object, int_param, sandbox

routes = Blueprint("jira_search", __name__, url_prefix=API)

LEGACY_SEARCH_GONE = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
                      "A full migration guideline is available at "
                      "https://developer.atlassian.com/changelog/#CHANGE-2046")


def search_params() -> JsonDict:
    """Search parameters from the query string (GET) or the JSON body (POST)."""
    if request.method == "POST":
        return body_object()
    args = request.args
    return {"jql": args.get("jql", ""), "startAt": args.get("startAt"), "maxResults": args.get("maxResults"),
            "fields": args.getlist("fields"), "validateQuery": args.get("validateQuery"),
            "nextPageToken": args.get("nextPageToken"), "expand": args.get("expand", ""),
            "reconcileIssues": [x for v in args.getlist("reconcileIssues") for x in v.split(",") if x]}


@routes.route("/search", methods=["GET", "POST"])
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


@routes.route("/search/jql", methods=["GET", "POST"])
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
