"""The console's POSTs: login, logout, replay of dead letters, the mapping preview. Every one has passed
the Origin and CSRF checks of `access.guard` before it runs."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import redirect, request
from werkzeug.wrappers import Response

from connector.mapping.load import default_mapping_path, load_mapping
from connector.mapping.rules import MappingError
from connector.ops import views
from connector.ops.console import access, data
from connector.ops.console.blueprint import blueprint, engine, render, settings
from connector.ops.console.filters import BadInput, delivery_filter, positive_int
from connector.sync import queue

log = logging.getLogger("connector.ops.console")


@blueprint.post("/login", endpoint="login_post")
def login() -> Response | tuple[str, int]:
    target = access.safe_next(request.form.get("next"))
    if not access.token_matches(request.form.get("token", "")):
        log.warning("console: failed login", extra={"remote": request.remote_addr})
        return render("login.html", 401, next=target, failed=True)
    access.start_session(access.Session.fresh(authenticated=True))  # a new CSRF value for the new session
    log.info("console: login", extra={"remote": request.remote_addr})
    return redirect(target, 303)


@blueprint.post("/logout")
def logout() -> Response:
    access.end_session()
    return redirect("/console/login", 303)


@blueprint.post("/replay")
def replay() -> Response | tuple[str, int]:
    """One dead letter (`id`), or every dead letter a filter matches: first a preview, then, confirmed, the
    replay of those the preview counted (ids up to the newest it saw, so a later one is not swept along)."""
    delivery_id = positive_int(request.form.get("id"), "id")
    if delivery_id is not None:
        return _replay_one(delivery_id)
    flt = delivery_filter(request.form, dead_only=True)
    ids = data.matching_dead_ids(engine(), flt)
    if request.form.get("confirm") != "yes":
        return render("replay_confirm.html", flt=flt, count=len(ids), upto=max(ids, default=0))
    if flt.upto is None:
        raise BadInput("upto: a confirmed replay names the newest dead letter its preview counted")
    count = queue.replay(engine(), ids) if ids else 0
    log.warning("console: replayed dead letters", extra={"count": count, "filter": flt.query_args()})
    return redirect(f"/console/dead-letters?replayed={count}", 303)


def _replay_one(delivery_id: int) -> Response:
    status = data.delivery_status(engine(), delivery_id)
    if status is None:
        raise BadInput(f"no delivery {delivery_id}", 404)
    if status != "dead":
        raise BadInput(f"delivery {delivery_id} is not a dead letter (it is {status}): nothing to replay", 409)
    count = queue.replay(engine(), [delivery_id])
    log.warning("console: replayed a dead letter", extra={"delivery_id": delivery_id, "count": count})
    return redirect(f"/console/dead-letters?replayed={count}", 303)


@blueprint.post("/mapping", endpoint="mapping_post")
def mapping() -> tuple[str, int]:
    """The same rendering as `nc-connector mappings check --payload`, on the active mapping."""
    payload = request.form.get("payload", "")
    path = Path(settings().mapping_file or default_mapping_path())
    try:
        active = load_mapping(path, project_override=settings().jira_project)
        preview = views.preview_payload(active, payload.encode("utf-8", "surrogateescape"))
    except MappingError as exc:
        return render("mapping.html", 200, payload=payload, preview=None, problem=f"the mapping: {exc}")
    except ValueError as exc:
        return render("mapping.html", 400, payload=payload, preview=None, problem=f"the payload: {exc}")
    return render("mapping.html", payload=payload, preview=preview, problem=preview.problem, mapping_path=path)
