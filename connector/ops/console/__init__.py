"""The operator console under /console/: server-rendered pages over the tables, for people (a login form)
and scripts (a bearer token); off unless NC_CONNECTOR_CONSOLE_TOKEN is set.

`access` the rules (session cookie, bearer, CSRF, Origin, security headers), `filters` the query strings
checked, `data` the queries, `pages` the GET views, `actions` the POSTs; templates and CSS ship with the
package. Part of `ops`: may import every stage (the replay is `sync.queue.replay`, the mapping preview is
`ops.views.preview_payload`, as the CLI's).
"""

from __future__ import annotations

from flask import Flask, Response, request

from connector.settings import Settings


def register(app: Flask, settings: Settings) -> None:
    """Serve the console when a token is set; without one, /console/ stays unrouted (404)."""
    if not settings.console_token:
        return
    from connector.ops.console import access, actions, pages  # noqa: F401  (the routes register themselves)
    from connector.ops.console.blueprint import blueprint

    app.config["NC_CONSOLE_TOKEN"] = settings.console_token  # a Secret: its repr never shows it
    app.register_blueprint(blueprint)

    @app.after_request
    def console_headers(response: Response) -> Response:
        # App-wide so that 404s and other errors under /console get the headers too.
        return access.finish(response) if request.path.startswith("/console") else response
