"""Jira sandbox: an in-memory, Jira-compatible REST API v2 subset, with switchable faults.

A test instrument and demo aid for nc-connector. It speaks enough of Jira's REST API v2 (shapes per
Atlassian's OpenAPI description, plain-string description and comment body) for the `jira` client:

    GET  /rest/api/2/serverInfo                  anonymous; deploymentType "Server" (default) or "Cloud"
    GET  /rest/api/2/myself, /user, /user/search?query=|username=
    GET  /rest/api/2/field, /project, /project/{key|id}, /project/{key|id}/statuses, /priority, /issuetype,
         /resolution, /status                    statuses and resolutions: the configured workflow's
    POST /rest/api/2/issue                       201 {id, key, self}; 400 ErrorCollection per field
    GET|PUT|DELETE /rest/api/2/issue/{key|id}    404 "Issue does not exist or you do not have permission to see it."
                                                 GET: `transitions` only with expand=transitions (fields of
                                                 each screen with expand=transitions.fields), never with
                                                 ignore_issue_expand; a moved issue's old key finds it
    GET|POST /rest/api/2/issue/{key}/transitions 400 "Transition id 'N' is not valid for this issue.";
                                                 ?expand=transitions.fields: each screen's FieldMetadata;
                                                 POST `fields` only for fields on the screen, required ones
                                                 given unless already set ("Resolution is required.")
    GET|POST /rest/api/2/issue/{key}/comment
    GET|POST /rest/api/2/issue/{key}/remotelink  POST with a known globalId updates that link (200), else 201
    GET|DELETE /rest/api/2/issue/{key}/remotelink/{id}
    GET|POST /rest/api/2/search                  startAt/maxResults/total (410 Gone if legacy_search=False)
    GET|POST /rest/api/2/search/jql              nextPageToken/isLast; reconcileIssues read fresh
    GET  /rest/applinks/latest/listApplicationlinks, /rest/auth/1/session

Workflows (`workflow`, --workflow; ids in connector.sandbox.workflows):
  review (default): To Do -(11 Start Progress)-> In Progress -(21 Submit for Review)-> In Review -(41 Approve)->
    Done; In Review -(31 Request Changes)-> In Progress; In Progress -(51 Stop Progress)-> To Do; To Do and In
    Progress -(61 Done)-> Done; Done -(71 Reopen)-> To Do. 41 and 61 have a screen with optional resolution.
  cloud: To Do, In Progress, Done; global transitions named after their target (11 To Do, 21 In Progress,
    31 Done) from every other status; no screens.
  classic (Data Center): Open 1, In Progress 3, Reopened 4, Resolved 5, Closed 6; 4 Start Progress (Open,
    Reopened), 301 Stop Progress, 5 Resolve Issue and 2 Close Issue (screen: resolution required unless set),
    3 Reopen Issue; resolutions Fixed, Won't Fix, Duplicate, Incomplete, Cannot Reproduce, Done.
  gated: Backlog -(11)-> Selected -(21)-> In Progress -(31)-> Review -(41 Approve, optional resolution)-> Done;
    Review -(51 Request changes)-> In Progress; Done -(61 Reopen)-> Backlog.
  FILE: a JSON description (connector.sandbox.workflow_file), checked at start-up.
Entering a done status keeps the given (or present) resolution, else sets the first one; leaving clears it.
Fields: summary, description, labels, priority, assignee, reporter, duedate, components (Manufacturing,
Supplier, Software), issuetype (Bug, Task, Non-conformance), project, customfield_10010 "Severity" (option:
Critical, Major, Minor), customfield_10011 "NC Link" (URL), customfield_10012 "Root cause" (text); read-only:
status, resolution (transition screens only), creator, created, updated, resolutiondate, comment.
Users: the caller "Sandbox Bot" (the configured email), dana@example.com, sam@example.com. On Cloud users
show and are addressed by accountId only ({"name"} is a 400); on Server they show key, name, emailAddress,
no accountId, and are addressed by {"name"} or {"key"} ({"accountId"} is a 400 naming the field).

JQL subset: clauses `field op value` joined by AND / OR / NOT and parentheses, then ORDER BY. Fields:
project, key/issuekey, labels (exact, case-insensitive), status, issuetype/type, priority, resolution,
assignee/reporter (incl. currentUser()), component, Severity/cf[10010], "NC Link"/cf[10011] (=, !=, in, not in,
is [not] EMPTY); summary, description, text, "Root cause"/cf[10012] (~ and !~ only: `summary = x` is a 400,
as in Jira); created/updated (=, !=, <, <=, >, >= with 'yyyy-MM-dd[ HH:mm]' or '-5d'). ORDER BY key, id,
created, updated, priority, summary. Search sees the index, which lags writes by `search_lag` seconds.

Authentication: HTTP basic with the configured email (or username "sandbox") and API token, or
`Authorization: Bearer <pat>`; otherwise 401. The /_sandbox/ control API needs no credentials.

Control API (not under /rest, never logged, never faulted):

    GET  /_sandbox/health     {"status": "ok", "deploymentType": ...}
    GET  /_sandbox/issues     {"issues": [issue JSON (all fields, incl. comment) + "remoteLinks": [...]]}
    POST /_sandbox/issues/{key}/move   {"key": "OPS-7"} and/or {"project": "OPS"}: the issue gets the new key
                              (the next free one in `project` if no key), keeps its id; its old key still
                              finds it; answers the issue JSON (400 {"error"} for a bad or taken key)
    GET  /_sandbox/requests   {"requests": [{seq, method, path, query, time, answered, status, fault,
                              retryAfter, delivered, body}], "retryAfterViolations": [...]}; filters
                              ?method=POST&path=/rest/api/2/issue*&since=<seq>&samePath=true
    GET  /_sandbox/faults     the current fault settings (same shape as the POST answer)
    POST /_sandbox/faults     JSON, every key optional:
        {"clear": true,                       # first drop queued faults, latency and budget
         "faults": [                          # appended to the queue; first matching rule wins
           {"kind": "rate_limit",             # or "429": answer 429 + Retry-After + X-RateLimit-*
            "count": 2,                       # next N matching requests (null: every one); default 1
            "retryAfter": 3,                  # whole seconds; null: no Retry-After header; default 1
            "method": "POST",                 # default "*"
            "path": "/rest/api/2/issue"},     # fnmatch glob on the path, default "*"
           {"kind": "unavailable", ...},      # or "503": answer 503 (+ Retry-After)
           {"kind": "unauthorized", ...},     # or "401": answer 401, as Jira does once a token expired
           {"kind": "drop", ...},             # close the connection without an answer, request not applied
           {"kind": "drop_after", ...},       # apply the request, then close without an answer
           {"kind": "slow", "seconds": 30}],  # wait, then answer normally (the write still happens)
         "latency": 0.2 | {"seconds": 0.2, "method": "POST", "path": "..."} | [...] | null,   # replaces
         "budget": {"limit": 10, "window": 60, "methods": ["POST", "PUT", "DELETE"], "perIssue": false}
                   | null,                    # at most `limit` writes per sliding window, else 429 with
                                              # Retry-After = seconds until a slot frees. Every answer to
                                              # a request the budget counts carries X-RateLimit-Limit,
                                              # X-RateLimit-Remaining (slots left after it) and, once
                                              # less than 20% is left, X-RateLimit-NearLimit: true
         "searchLag": 2.0}                    # seconds before writes become visible to search
                              answers {"faults": [...], "latency": [...], "budget": ..., "searchLag": ...}
    POST /_sandbox/reset      forget issues, requests, counters and faults (back to start-up options)
    GET  /_sandbox/stats      {"creates", "updates", "transitions", "comments", "remoteLinksCreated",
                              "remoteLinksUpdated", "remoteLinksDeleted", "deletes", "searches", "issues",
                              "requests", "faultsServed": {kind: n, ..., "budget": n}, "faultsServedTotal",
                              "retryAfterViolations"}

The same switches exist on `SandboxState`: add_fault(), set_latency(), set_budget(), clear_faults(),
configure_faults(), search_lag, move_issue(), requests(), retry_after_violations(), stats(), reset().

Run it: `python -m connector.sandbox --host 127.0.0.1 --port 2990` (see --help), `run(host, port, **options)`,
or in-process for tests: `with start_in_thread() as sandbox: JIRA(sandbox.url, basic_auth=...)`. Options
(SandboxConfig fields, also for `start_in_thread(...)` and `create_sandbox_app(...)`) include
`workflow="classic"` (--workflow NAME|FILE; a bad name or file is refused at start-up, naming the problem)
and `ignore_issue_expand=True` (--ignore-issue-expand: GET issue never carries `transitions`, as some servers).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import fields as dataclass_fields
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from connector.sandbox.app import create_sandbox_app
from connector.sandbox.config import SandboxConfig
from connector.sandbox.errors import JiraError
from connector.sandbox.requestlog import RequestRecord
from connector.sandbox.state import SandboxState
from connector.sandbox.workflow_file import load_workflow

__all__ = [
    "JiraError",
    "RequestRecord",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxState",
    "add_arguments",
    "create_sandbox_app",
    "options_from_args",
    "run",
    "start_in_thread",
]

DEFAULT_PORT = 2990
CONFIG_OPTIONS = frozenset(f.name for f in dataclass_fields(SandboxConfig) if f.init)


class QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's handler without the per-request access log line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def build_server(host: str, port: int, state: SandboxState, *, quiet: bool = False) -> BaseWSGIServer:
    handler = QuietRequestHandler if quiet else None
    return make_server(host, port, create_sandbox_app(state), threaded=True, request_handler=handler)


def run(host: str, port: int, **options: Any) -> None:
    """Serve the sandbox until Ctrl-C or SIGTERM; `options` are SandboxConfig fields plus `quiet` (no access log)."""
    quiet = bool(options.pop("quiet", False))
    state = SandboxState(SandboxConfig(**options))
    server = build_server(host, port, state, quiet=quiet)
    config = state.config
    print(f"Jira sandbox ({config.deployment_type}, workflow {config.definition.name}) on "
          f"http://{host}:{server.port} - project {config.project_key}, "
          f"basic auth {config.email} / {config.token}, bearer {config.pat}; control API under /_sandbox/",
          file=sys.stderr, flush=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _exit_quietly(signum: int, frame: object) -> None:
    """SIGTERM ends `run()` like Ctrl-C does: through its cleanup, with exit status 0."""
    raise SystemExit(0)


class RunningSandbox:
    """A sandbox served from a background thread; use as a context manager or call stop()."""

    def __init__(self, server: BaseWSGIServer, state: SandboxState) -> None:
        self.server = server
        self.state = state
        host = server.host if ":" not in server.host else f"[{server.host}]"
        self.url = f"http://{host}:{server.port}"
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="jira-sandbox", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def start_in_thread(state: SandboxState | None = None, *, host: str = "127.0.0.1", port: int = 0,
                    quiet: bool = True, **options: Any) -> RunningSandbox:
    """Serve the sandbox over real HTTP from a daemon thread (port 0: any free port, see `.url`)."""
    if state is not None and options:
        raise TypeError("pass either a SandboxState or configuration options, not both")
    state = state or SandboxState(SandboxConfig(**options))
    return RunningSandbox(build_server(host, port, state, quiet=quiet), state)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's command-line options (for `python -m connector.sandbox` and a CLI subcommand)."""
    defaults = SandboxConfig()
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)")
    parser.add_argument("--project-key", default=defaults.project_key, help="project key (default: %(default)s)")
    parser.add_argument("--email", default=defaults.email, help="basic-auth user (default: %(default)s)")
    parser.add_argument("--token", default=defaults.token, help="basic-auth API token (default: %(default)s)")
    parser.add_argument("--pat", default=defaults.pat, help="bearer personal access token (default: %(default)s)")
    parser.add_argument("--deployment-type", choices=("Server", "Cloud"), default=defaults.deployment_type,
                        help="what serverInfo reports; the jira client searches via /search on Server and "
                             "/search/jql on Cloud (default: %(default)s)")
    parser.add_argument("--search-lag", type=float, default=defaults.search_lag,
                        help="seconds before writes become visible to search (default: %(default)s)")
    parser.add_argument("--latency", type=float, default=defaults.latency,
                        help="seconds added to every /rest/ request (default: %(default)s)")
    parser.add_argument("--no-legacy-search", action="store_true",
                        help="answer /rest/api/2/search with 410 Gone, as Jira Cloud does since its removal")
    parser.add_argument("--workflow", default=defaults.workflow, metavar="NAME|FILE", type=workflow_option,
                        help="the workflow: review, cloud (Jira Cloud's simplified one), classic (Data Center's "
                             "default), gated (no direct path to done) or a JSON file (default: %(default)s)")
    parser.add_argument("--ignore-issue-expand", action="store_true",
                        help="answer GET issue without transitions even when expand=transitions asks for them")
    parser.add_argument("--quiet", action="store_true", help="no per-request access log")


def workflow_option(value: str) -> str:
    """--workflow's value, checked while parsing: a bad name or file is a usage error naming the problem."""
    try:
        load_workflow(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword options for `run()` from parsed `add_arguments` options (host and port excluded)."""
    return {"project_key": args.project_key, "email": args.email, "token": args.token, "pat": args.pat,
            "deployment_type": args.deployment_type, "search_lag": args.search_lag, "latency": args.latency,
            "legacy_search": not args.no_legacy_search, "workflow": args.workflow,
            "ignore_issue_expand": args.ignore_issue_expand, "quiet": args.quiet}
