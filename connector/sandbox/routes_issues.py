"""Routes for issues and their workflow: create, read (fields, expand), edit, delete; list and perform
transitions (expand=transitions.fields adds each one's screen fields).

With `ignore_issue_expand` GET issue answers without `transitions` whatever `expand` asks, as some servers
do; GET issue/{key}/transitions still lists them."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from connector.sandbox.render import expand_parts, issue_json, transition_json, wanted_fields
from connector.sandbox.web import API, actor, api, body_object, no_content, sandbox

routes = Blueprint("jira_issues", __name__, url_prefix=API)


@routes.post("/issue")
def create_issue() -> ResponseReturnValue:
    issue = sandbox().create_issue(body_object().get("fields"), actor())
    return jsonify({"id": issue.id, "key": issue.key, "self": api(f"issue/{issue.id}")}), 201


@routes.get("/issue/<ref>")
def get_issue(ref: str) -> ResponseReturnValue:
    state = sandbox()
    issue = state.issue(ref)
    wanted = wanted_fields(request.args.getlist("fields"), "*all")
    expand = expand_parts(request.args.get("expand", ""))
    if state.config.ignore_issue_expand:
        expand -= {"transitions", "transitions.fields"}
    return jsonify(issue_json(issue, wanted, ",".join(sorted(expand))))


@routes.put("/issue/<ref>")
def edit_issue(ref: str) -> ResponseReturnValue:
    body = body_object()
    issue = sandbox().update_issue(ref, body.get("fields"), body.get("update"), actor())
    if request.args.get("returnIssue", "").lower() == "true":
        return jsonify(issue_json(issue))
    return no_content()


@routes.delete("/issue/<ref>")
def delete_issue(ref: str) -> ResponseReturnValue:
    sandbox().delete_issue(ref)
    return no_content()


@routes.get("/issue/<ref>/transitions")
def get_transitions(ref: str) -> ResponseReturnValue:
    _, available = sandbox().transitions(ref)
    only = request.args.get("transitionId")
    with_fields = "transitions.fields" in expand_parts(request.args.get("expand", ""))
    chosen = [transition_json(t, with_fields) for t in available if only is None or t.id == only]
    return jsonify({"expand": "transitions", "transitions": chosen})


@routes.post("/issue/<ref>/transitions")
def do_transition(ref: str) -> ResponseReturnValue:
    sandbox().transition(ref, body_object(), actor())
    return no_content()
