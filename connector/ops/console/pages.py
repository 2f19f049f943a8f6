"""The console's pages (GET): overview, deliveries, one NC, dead letters, mapping preview, login."""

from __future__ import annotations

from flask import redirect, request
from werkzeug.wrappers import Response

from connector.models import DeliveryStatus
from connector.ops.console import access, data
from connector.ops.console.blueprint import blueprint, engine, render, settings
from connector.ops.console.filters import STEPS, delivery_filter, nc_id, page_number
from connector.ops.console.samples import SAMPLE_PAYLOAD

STATUSES = tuple(s.value for s in DeliveryStatus)


@blueprint.get("")
def bare() -> Response:
    return redirect("/console/", 308)


@blueprint.get("/")
def overview() -> tuple[str, int]:
    found = data.overview(engine())
    return render("overview.html", o=found, statuses=STATUSES, beat_interval=settings().worker_heartbeat)


@blueprint.get("/deliveries")
def deliveries() -> tuple[str, int]:
    flt = delivery_filter(request.args)
    page = data.search(engine(), flt, page_number(request.args))
    return render("deliveries.html", flt=flt, page=page, statuses=STATUSES)


@blueprint.get("/nc/<path:raw_id>")
def nc(raw_id: str) -> tuple[str, int]:
    return render("nc.html", nc=data.nc_view(engine(), nc_id(raw_id)))


@blueprint.get("/dead-letters")
def dead_letters() -> tuple[str, int]:
    flt = delivery_filter(request.args, dead_only=True)
    page = data.search(engine(), flt, page_number(request.args))
    replayed = request.args.get("replayed", "")
    return render("dead_letters.html", flt=flt, page=page, steps=STEPS,
                  replayed=int(replayed) if replayed.isdigit() else None)


@blueprint.get("/mapping")
def mapping() -> tuple[str, int]:
    return render("mapping.html", payload=SAMPLE_PAYLOAD, preview=None, problem=None)


@blueprint.get("/login")
def login() -> tuple[str, int]:
    return render("login.html", next=access.safe_next(request.args.get("next")), failed=False)
