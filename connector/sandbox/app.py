"""HTTP face of the Jira sandbox: the Flask app, assembled from one blueprint per resource group, behind
the fault middleware.

- routes_reference: serverInfo, users, fields, project, permissions, create screen, reference data;
- routes_issues: issues and their transitions;  routes_comments_links: comments and remote links;
- routes_search: /search and /search/jql;  routes_control: the /_sandbox control API;
- web: authentication and error answers;  render: Jira's JSON shapes;  middleware: logging and faults.

The endpoint list and the control API are documented in the package docstring (`connector.sandbox`).
Shapes follow Atlassian's published OpenAPI description (v3 paths, with v2's plain-string description
and comment body).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from connector.sandbox import routes_comments_links, routes_control, routes_issues, routes_reference, routes_search
from connector.sandbox.config import SandboxConfig
from connector.sandbox.errors import JiraError
from connector.sandbox.middleware import FaultMiddleware
from connector.sandbox.state import SandboxState
from connector.sandbox.web import EXTENSION, check_request, http_error, jira_error

BLUEPRINTS = (routes_reference.routes, routes_issues.routes, routes_comments_links.routes, routes_search.routes,
              routes_reference.misc, routes_control.control)


def create_sandbox_app(state: SandboxState | None = None, **options: Any) -> Flask:
    """A Flask app serving the sandbox; `options` are `SandboxConfig` fields (used when no state is given)."""
    if state is not None and options:
        raise TypeError("pass either a SandboxState or configuration options, not both")
    state = state or SandboxState(SandboxConfig(**options))
    app = Flask(__name__)
    app.extensions[EXTENSION] = state
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.before_request(check_request)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.register_error_handler(JiraError, jira_error)
    app.register_error_handler(HTTPException, http_error)
    app.wsgi_app = FaultMiddleware(app.wsgi_app, state)  # type: ignore[method-assign]
    return app
