"""Routes for an issue's comments (list, paged; add) and remote links (list, by globalId; upsert; read;
delete)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from connector.sandbox.render import comment_json, comments_page, remote_link_json
from connector.sandbox.web import API, actor, api, body_object, int_param, no_content, sandbox

routes = Blueprint("jira_comments_links", __name__, url_prefix=API)


@routes.get("/issue/<ref>/comment")
def get_comments(ref: str) -> ResponseReturnValue:
    issue = sandbox().issue(ref)
    start = int_param(request.args, "startAt", 0)
    limit = int_param(request.args, "maxResults", 5000)
    expand = {part.strip() for part in request.args.get("expand", "").split(",")}
    return jsonify(comments_page(issue, start, limit, "properties" in expand))


@routes.post("/issue/<ref>/comment")
def add_comment(ref: str) -> ResponseReturnValue:
    body = body_object()
    issue, comment = sandbox().add_comment(ref, body.get("body"), actor(), body.get("visibility"),
                                           body.get("properties"))
    return jsonify(comment_json(issue, comment)), 201


@routes.get("/issue/<ref>/remotelink")
def get_remote_links(ref: str) -> ResponseReturnValue:
    issue = sandbox().issue(ref)
    wanted = request.args.get("globalId")
    links = [lk for lk in issue.remote_links if wanted is None or lk.global_id == wanted]
    return jsonify([remote_link_json(issue, lk) for lk in links])


@routes.post("/issue/<ref>/remotelink")
def upsert_remote_link(ref: str) -> ResponseReturnValue:
    issue, link, created = sandbox().upsert_remote_link(ref, body_object())
    return jsonify({"id": link.id, "self": api(f"issue/{issue.key}/remotelink/{link.id}")}), 201 if created else 200


@routes.get("/issue/<ref>/remotelink/<link_id>")
def get_remote_link(ref: str, link_id: str) -> ResponseReturnValue:
    issue, link = sandbox().remote_link(ref, link_id)
    return jsonify(remote_link_json(issue, link))


@routes.delete("/issue/<ref>/remotelink/<link_id>")
def delete_remote_link(ref: str, link_id: str) -> ResponseReturnValue:
    sandbox().delete_remote_link(ref, link_id)
    return no_content()
