"""The /_sandbox control API: health, all issues, moving an issue, the request log, fault settings, reset
and stats.

Not under /rest: never authenticated, logged or faulted. Bad settings answer 400 {"error": ...}.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from connector.sandbox.errors import JiraError
from connector.sandbox.render import issue_json, remote_link_json
from connector.sandbox.web import int_param, sandbox

control = Blueprint("jira_sandbox_control", __name__, url_prefix="/_sandbox")

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


@control.post("/issues/<ref>/move")
def move_issue(ref: str) -> ResponseReturnValue:
    """Move an issue as a person would: {"key": "OPS-7"} and/or {"project": "OPS"}; answers the issue."""
    spec = request.get_json(force=True, silent=True)
    if not isinstance(spec, dict) or set(spec) - {"key", "project"}:
        raise ValueError('expected a JSON object {"key": "OPS-7"} and/or {"project": "OPS"}')
    return jsonify(issue_json(sandbox().move_issue(ref, spec.get("key"), project=spec.get("project"))))


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
