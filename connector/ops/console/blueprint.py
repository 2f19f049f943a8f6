"""The console's blueprint: its access hooks, its error pages and the helpers its templates use."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request
from sqlalchemy import Engine

from connector.clock import utcnow
from connector.ops.console import access
from connector.ops.console.filters import BadInput
from connector.settings import Settings

blueprint = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                      static_folder="static")
blueprint.before_request(access.guard)


def engine() -> Engine:
    found: Engine = current_app.config["NC_ENGINE"]
    return found


def settings() -> Settings:
    found: Settings = current_app.config["NC_SETTINGS"]
    return found


def render(template: str, code: int = 200, **context: Any) -> tuple[str, int]:
    """A page, with what every page needs: the session's CSRF token (for the logout button) and Jira's URL."""
    current = g.get("console_session") or access.read_session()
    signed_in = access.bearer_ok() or (current is not None and current.authenticated)
    # Only a page with a form starts a session: an error page for a stranger must not replace a cookie.
    csrf = access.session().csrf if signed_in or template == "login.html" else ""
    return render_template(f"console/{template}", csrf=csrf, signed_in=signed_in,
                           jira_url=settings().jira_url, path=request.path, **context), code


@blueprint.errorhandler(BadInput)
def bad_input(exc: BadInput) -> tuple[str, int]:
    return render("error.html", exc.status, message=exc.message, status=exc.status)


@blueprint.errorhandler(access.Refused)
def refused(exc: access.Refused) -> Response:
    body, status = render("error.html", exc.status, message=exc.message, status=exc.status)
    response = Response(body, status, mimetype="text/html")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="nc-connector console"'
    return response


@blueprint.app_template_filter("when")
def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


@blueprint.app_template_filter("age")
def age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago (or, for a future time, in how long): 42s, 5m 3s, 2h 10m, 3d 4h."""
    if value is None:
        return "-"
    seconds = int(((now or utcnow()) - value).total_seconds())
    suffix = " ago" if seconds >= 0 else " from now"
    seconds = abs(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            return f"{seconds // size}{unit} {seconds % size // sub_size}{sub}{suffix}"
    return f"{seconds}s{suffix}"


@blueprint.app_template_filter("first_line")
def first_line(value: str | None, limit: int = 120) -> str:
    line = (value or "").strip().splitlines()[0] if (value or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


@blueprint.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    """As `mappings check` prints it; the template escapes the text like any other value."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
