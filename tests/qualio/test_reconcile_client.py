"""Reconcile's requests to Qualio, mocked with `responses`: every request a documented operation with parameters
the spec allows, every answer shaped by the spec; the exact requests of a pass; 429s, a refused key."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from sqlalchemy import delete, select

from connector.budgets import SharedBudget
from connector.models import ReconcileRun, Throttle
from connector.qualio.client import QualioAuthError, QualioClient
from connector.qualio.drift import STATUSES
from connector.qualio.reconcile import ReconcileFailed, Reconciler
from tests.qualio.support import BASE, KEY, fixture, spec

LIST = "/v1/events/events"
TEMPLATES = "/v1/events/templates"
NCR = "c3e000df-4e7e-4916-b5dc-b236a83b3fe5"


@pytest.mark.parametrize(("name", "schema_name"), [
    ("templates", "eventTemplateResp"),
    ("events_open", "eventQueryResponse"),
    ("error_400_parameters", "genericBadRequest400ParametersResponse"),
])
def test_fixtures_match_the_spec(name: str, schema_name: str) -> None:
    assert spec().problems(fixture(name), spec().component(schema_name)) == []


def check_request(request: Any) -> tuple[str, dict[str, str]]:
    """The request is a documented GET with the key header and query parameters its operation allows."""
    url = urlsplit(request.url)
    template, operation = spec().match(url.path, "GET")
    assert request.method == "GET" and request.body is None
    assert request.headers["X-Api-Key"] == KEY and request.headers["Accept"] == "application/json"
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    declared = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
    assert set(query) <= set(declared), query
    for name, parameter in declared.items():
        if parameter.get("required"):
            assert name in query, name
    for name, raw in query.items():
        schema = spec().resolve(declared[name]["schema"])
        value: Any = int(raw) if schema.get("type") == "number" else raw
        assert spec().problems(value, declared[name]["schema"]) == [], (name, raw)
    return template, query


class FakeQualio:
    """Answers the list and the templates from memory, each answer checked against the spec; logs every call."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]], throttle: int = 0, status: int = 200) -> None:
        self.rows = rows
        self.throttle = throttle
        self.status = status
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        template, query = check_request(request)
        self.calls.append((template, query))
        if self.status != 200:
            return self._answer(template, self.status, fixture("error_403"))
        if self.throttle:
            self.throttle -= 1
            return self._answer(template, 429, fixture("error_429"))
        if template == TEMPLATES:
            return self._answer(template, 200, fixture("templates"))
        rows = self.rows.get(query["status"], [])
        offset, limit = int(query["offset"]), int(query["limit"])
        return self._answer(template, 200, {"items": rows[offset:offset + limit], "total": len(rows)})

    @staticmethod
    def _answer(template: str, status: int, body: Any) -> tuple[int, dict[str, str], str]:
        assert spec().problems(body, spec().response(template, "get", status)) == [], body
        return status, {"Content-Type": "application/json"}, json.dumps(body)


def mock(rsps: responses.RequestsMock, fake: FakeQualio) -> None:
    rsps.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/v1/events/(events|templates)(\?.*)?$"),
                      callback=fake)


def make(engine: Any, slept: list[float] | None = None, page_size: int = 2) -> Reconciler:
    client = QualioClient(BASE, KEY, timeout=5, limiter=SharedBudget(engine, "qualio", 60_000))

    def sleep(seconds: float) -> None:  # time passes: the shared pause is over
        if slept is not None:
            slept.append(seconds)
        with engine.begin() as conn:
            conn.execute(delete(Throttle).where(Throttle.name == "qualio"))

    return Reconciler(engine, client, ("NCR",), page_size=page_size, sleep=sleep)


def page(status: str, offset: int, limit: int) -> tuple[str, dict[str, str]]:
    return (LIST, {"status": status, "offset": str(offset), "limit": str(limit), "event_template_matrix_id": NCR})


def test_the_exact_requests_of_a_pass(engine: Any) -> None:
    fake = FakeQualio({"open": fixture("events_open")["items"]})
    with responses.RequestsMock() as rsps:
        mock(rsps, fake)
        report = make(engine).run()
    expected = [(TEMPLATES, {}), page("open", 0, 2), page("open", 1, 2)]  # pages overlap by one row
    expected += [page(s, 0, 2) for s in STATUSES[1:]]
    # settle: each status but the last one again: its total and first row, and (open) its last row
    expected += [page("open", 0, 1), page("open", 2, 1)] + [page(s, 0, 1) for s in STATUSES[1:-1]]
    assert fake.calls == expected
    assert report.figures.requests == len(expected) and report.figures.scanned == 3
    assert [s.total for s in report.sweeps] == [3, 0, 0, 0, 0] and report.settled


def test_a_429_is_waited_out_and_counted(engine: Any) -> None:
    fake, slept = FakeQualio({"open": fixture("events_open")["items"]}, throttle=2), []
    with responses.RequestsMock() as rsps:
        mock(rsps, fake)
        report = make(engine, slept).run()
    assert report.figures.throttled == 2 and report.figures.scanned == 3
    assert fake.calls[0] == fake.calls[1] == fake.calls[2] == (TEMPLATES, {})  # the same request, again
    assert len(slept) == 2 and all(s > 0 for s in slept)  # the shared pause, not a hammering retry


def test_a_refused_key_fails_the_run_without_showing_the_key(engine: Any) -> None:
    fake = FakeQualio({}, status=403)
    with responses.RequestsMock() as rsps:
        mock(rsps, fake)
        with pytest.raises(ReconcileFailed) as failed:
            make(engine).run()
    assert KEY not in str(failed.value) and "not authorized" in str(failed.value)
    with engine.connect() as conn:
        run = conn.execute(select(ReconcileRun.outcome, ReconcileRun.error)).one()
    assert run.outcome == "failed" and run.error and KEY not in run.error


def test_no_template_with_the_prefix_is_a_clear_failure(engine: Any) -> None:
    fake = FakeQualio({})
    with responses.RequestsMock() as rsps:
        mock(rsps, fake)
        reconciler = make(engine)
        reconciler.prefixes = ("DEV",)
        with pytest.raises(ReconcileFailed, match=r"no Qualio event template has the prefix DEV .*NCR"):
            reconciler.run()


def test_client_calls_are_the_documented_operations() -> None:
    fake = FakeQualio({"closed": fixture("events_open")["items"]})
    with responses.RequestsMock() as rsps:
        mock(rsps, fake)
        client = QualioClient(BASE, KEY, timeout=5)
        assert [t["prefix"] for t in client.list_templates()] == ["NCR", "CAPA"]
        assert client.query_events("closed", 2, 5)["total"] == 3
    assert fake.calls == [(TEMPLATES, {}), (LIST, {"status": "closed", "offset": "2", "limit": "5"})]
    assert client.requests == 2


def test_a_403_on_the_list_is_an_auth_error() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(BASE + LIST, json=fixture("error_403"), status=403)
        with pytest.raises(QualioAuthError):
            QualioClient(BASE, KEY, timeout=5).query_events("open", 0, 10)
