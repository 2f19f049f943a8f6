"""What the Qualio tests share: the fixtures, the spec, a fake clock, a client on it, request checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import responses

from connector.qualio.client import QualioClient
from tests.conftest import FIXTURES as TEST_FIXTURES
from tests.openapi import QUALIO_SPEC, OpenAPI, load

FIXTURES = TEST_FIXTURES / "qualio"
BASE = "https://api.qualio.com"
KEY = "qk_live_5f0c1d2e3b4a59687766554433221100"
EVENT_PATH = "/v1/events/events/{code}"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def spec() -> OpenAPI:
    return load(QUALIO_SPEC)


class FakeClock:
    """A monotonic clock that only moves when ``sleep`` is called (or a test moves ``now``)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


def no_jitter(delay: float) -> float:
    return delay


def make_client(clock: FakeClock, max_per_minute: int = 200,
                jitter: Callable[[float], float] = no_jitter) -> QualioClient:
    return QualioClient(BASE + "/", KEY, timeout=5, max_per_minute=max_per_minute, clock=clock, sleep=clock.sleep,
                        jitter=jitter)


def event_url(code: str) -> str:
    return f"{BASE}/v1/events/events/{code}"


def answer(rsps: responses.RequestsMock, code: str, status: int, body: Any,
           headers: dict[str, str] | None = None) -> None:
    """Register Qualio's answer for GET event ``code``, after checking ``body`` against the spec's schema
    for that status (the operation documents 200, 400, 403, 404 and 429)."""
    problems = spec().problems(body, spec().response(EVENT_PATH, "get", status))
    assert problems == [], problems
    rsps.get(event_url(code), json=body, status=status, headers=headers or {})


def assert_requests(rsps: responses.RequestsMock, codes: list[str]) -> None:
    """Exactly these GETs were sent, in order: each a documented operation, with the key header and a
    path parameter the spec's eventCode allows."""
    assert [call.request.url for call in rsps.calls] == [event_url(code) for code in codes]
    for call, code in zip(rsps.calls, codes, strict=True):
        request = call.request
        assert request.method == "GET" and request.body is None
        path = urlsplit(request.url).path
        template, operation = spec().match(path, "GET")
        assert template == EVENT_PATH and operation["operationId"] == "getEvent"
        (parameter,) = operation["parameters"]
        assert spec().problems(unquote(path.rsplit("/", 1)[1]), parameter["schema"]) == []
        assert unquote(path.rsplit("/", 1)[1]) == code
        assert request.headers["X-Api-Key"] == KEY and request.headers["Accept"] == "application/json"
