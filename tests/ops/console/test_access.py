"""Every access rule of the console, over plain HTTP (Flask's test client), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import html
import logging
import re

import pytest
from sqlalchemy import select

from connector.models import Delivery
from connector.ops import console as console_package
from connector.ops.app import create_app
from connector.ops.console import access
from tests.conftest import load_fixture, make_settings
from tests.ops.console.support import TOKEN, bearer, bury, console_client, csrf_of, ingest, login

PAGES = ("/console/", "/console/deliveries", "/console/dead-letters", "/console/mapping")


def csrf_next(form) -> str:
    return html.unescape(re.search(r'name="next" value="([^"]*)"', form.get_data(as_text=True)).group(1))


def status_of(engine, delivery_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(Delivery.status).where(Delivery.id == delivery_id)).scalar_one())


def test_off_without_a_token(db_url, engine):
    off = create_app(make_settings(db_url), engine).test_client()
    for path in (*PAGES, "/console/login", "/console/static/console.css"):
        assert off.get(path, headers=bearer()).status_code == 404, path
    assert off.post("/console/replay", data={"id": "1"}).status_code == 404
    assert off.post("/console/login", data={"token": TOKEN}).status_code == 404
    # the same app with a token serves them
    assert console_client(db_url, engine).get("/console/login").status_code == 200


def test_short_token_is_refused_at_start_up():
    from connector.settings import SettingsError

    with pytest.raises(SettingsError, match="NC_CONNECTOR_CONSOLE_TOKEN") as err:
        make_settings(NC_CONNECTOR_CONSOLE_TOKEN="short-secret")
    assert "short-secret" not in str(err.value)


def test_without_credentials_401_or_a_redirect_to_login(console):
    assert console.get("/console").headers["Location"] == "/console/"  # only a redirect, to a page that asks
    for path in (*PAGES, "/console/nc/NCR-12"):
        answer = console.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        page = console.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 303, path
        assert page.headers["Location"].startswith("/console/login?next=")
    back = console.get("/console/deliveries?status=dead&page=1", headers={"Accept": "text/html"})
    assert back.headers["Location"] == "/console/login?next=/console/deliveries%3Fstatus%3Ddead%26page%3D1"
    form = console.get(back.headers["Location"])
    answer = console.post("/console/login", data={"csrf_token": csrf_of(form), "token": TOKEN,
                                                   "next": csrf_next(form)})
    assert answer.headers["Location"] == "/console/deliveries?status=dead&page=1"


def test_bearer_works_for_get_and_a_wrong_one_does_not(console):
    for path in PAGES:
        assert console.get(path, headers=bearer()).status_code == 200, path
        assert console.get(path, headers=bearer(TOKEN + "x")).status_code == 401, path
        assert console.get(path, headers=bearer(TOKEN[:-1])).status_code == 401, path
        # a browser with a wrong bearer is told so, not sent round the login page
        assert console.get(path, headers={**bearer("nope"), "Accept": "text/html"}).status_code == 401
    assert console.get("/console/", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401


def test_post_without_a_valid_csrf_token_is_403_even_with_the_bearer(console, engine):
    ingest(console, load_fixture("nc_created"))
    bury(engine, 1)
    assert console.post("/console/replay", data={"id": "1"}, headers=bearer()).status_code == 403
    assert console.post("/console/replay", data={"id": "1", "csrf_token": "forged"}, headers=bearer()).status_code \
        == 403
    assert status_of(engine, 1) == "dead"
    # the token a page hands out (with its cookie) is what a script's POST carries
    page = console.get("/console/dead-letters", headers=bearer())
    token = page.headers["X-CSRF-Token"]
    assert csrf_of(page) == token
    done = console.post("/console/replay", data={"id": "1"}, headers={**bearer(), "X-CSRF-Token": token})
    assert done.status_code == 303 and status_of(engine, 1) == "queued"


def test_csrf_token_is_tied_to_its_session(db_url, engine):
    alice, mallory = console_client(db_url, engine), console_client(db_url, engine)
    ingest(alice, load_fixture("nc_created"))
    bury(engine, 1)
    login(alice)
    foreign = login(mallory)
    assert alice.post("/console/replay", data={"id": "1", "csrf_token": foreign}).status_code == 403
    assert status_of(engine, 1) == "dead"


def test_login_logout_and_their_csrf(console):
    form = console.get("/console/login")
    assert console.post("/console/login", data={"token": TOKEN}).status_code == 403  # no CSRF token
    wrong = console.post("/console/login", data={"csrf_token": csrf_of(form), "token": "not-the-token-at-all"})
    assert wrong.status_code == 401 and "not the console token" in wrong.get_data(as_text=True)
    assert "not-the-token-at-all" not in wrong.get_data(as_text=True)
    assert console.get("/console/").status_code == 401
    right = console.post("/console/login", data={"csrf_token": csrf_of(form), "token": TOKEN,
                                                  "next": "/console/dead-letters"})
    assert right.status_code == 303 and right.headers["Location"] == "/console/dead-letters"
    page = console.get("/console/")
    assert page.status_code == 200
    # a new session has a new CSRF value: the one of the login form no longer works
    assert csrf_of(page) != csrf_of(form)
    assert console.post("/console/logout", data={"csrf_token": csrf_of(form)}).status_code == 403
    out = console.post("/console/logout", data={"csrf_token": csrf_of(page)})
    assert out.status_code == 303 and "nc_console=;" in out.headers["Set-Cookie"]
    assert console.get("/console/").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/console/", "https://evil.example/", "/elsewhere", "/console\\x"])
def test_login_goes_back_only_into_the_console(console, target):
    form = console.get("/console/login")
    answer = console.post("/console/login", data={"csrf_token": csrf_of(form), "token": TOKEN, "next": target})
    assert answer.headers["Location"] == "/console/"


def test_a_cross_site_post_is_refused(console, engine):
    ingest(console, load_fixture("nc_created"))
    bury(engine, 1)
    csrf = login(console)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Origin": "https://localhost"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        answer = console.post("/console/replay", data={"id": "1", "csrf_token": csrf}, headers=headers)
        assert answer.status_code == 403, headers
        assert status_of(engine, 1) == "dead"
    same = console.post("/console/replay", data={"id": "1", "csrf_token": csrf},
                        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 303 and status_of(engine, 1) == "queued"


def cookie_of(answer) -> str:
    (cookie,) = [v for k, v in answer.headers.items() if k == "Set-Cookie" and v.startswith("nc_console=")]
    return str(cookie)


@pytest.mark.parametrize(("base_url", "headers", "secure"), [
    ("http://localhost", {}, False),
    ("https://localhost", {}, True),
    ("http://localhost", {"X-Forwarded-Proto": "https"}, True),  # TLS ends at the proxy
])
def test_cookie_flags(console, base_url, headers, secure):
    form = console.get("/console/login", base_url=base_url, headers=headers)
    origin = {"Origin": base_url.replace("http:", "https:") if secure else base_url}
    answer = console.post("/console/login", base_url=base_url, headers={**headers, **origin},
                          data={"csrf_token": csrf_of(form), "token": TOKEN})
    assert answer.status_code == 303
    flags = [part.strip() for part in cookie_of(answer).split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/console/" in flags
    assert ("Secure" in flags) is secure


def test_comparisons_are_constant_time(console, monkeypatch):
    calls: list[tuple[bytes, bytes]] = []
    real = access.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    expected = hashlib.sha256(TOKEN.encode()).digest()
    assert console.get("/console/", headers=bearer("x" * 40)).status_code == 401
    # the token was compared by compare_digest, hashed first so that not even its length leaks
    assert [(len(a), b) for a, b in calls if b == expected] == [(32, expected)]
    calls.clear()
    form = console.get("/console/login")
    console.post("/console/login", data={"csrf_token": csrf_of(form), "token": TOKEN})
    assert (expected, expected) in calls
    assert (csrf_of(form).encode(), csrf_of(form).encode()) in calls  # the CSRF value too


def test_the_token_never_appears_in_a_page_a_header_or_a_log(db_url, engine, caplog):
    caplog.set_level(logging.DEBUG)
    client = console_client(db_url, engine)
    answers = [client.get("/console/login")]
    answers.append(client.post("/console/login", data={"csrf_token": csrf_of(answers[0]), "token": TOKEN[:-2]}))
    answers.append(client.post("/console/login", data={"csrf_token": csrf_of(answers[0]), "token": TOKEN}))
    for path in (*PAGES, "/console/nc/NOPE", "/console/deliveries?page=x", "/console/nope"):
        answers.append(client.get(path))
    answers.append(client.post("/console/replay", data={"id": "1"}))
    answers.append(client.get("/console/", headers=bearer(TOKEN + "!")))
    for answer in answers:
        seen = answer.get_data(as_text=True) + str(answer.headers)
        assert TOKEN not in seen and TOKEN[:-2] not in seen
    assert caplog.records and all(TOKEN[:-2] not in str(vars(r)) for r in caplog.records)
    assert any("failed login" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", ["/console/", "/console/login", "/console/nope", "/console/nc/NOPE",
                                  "/console/static/console.css"])
def test_security_headers_on_every_answer(console, path):
    answer = console.get(path, headers=bearer() if path != "/console/login" else {})
    assert answer.status_code in (200, 404)
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert "script-src" not in csp and "unsafe" not in csp  # no script may run, inline or not
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "same-origin"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    unauthenticated = console.get("/console/deliveries")
    assert unauthenticated.status_code == 401 and unauthenticated.headers["X-Frame-Options"] == "DENY"


def test_a_tampered_or_foreign_session_cookie_is_no_session(db_url, engine):
    client = console_client(db_url, engine)
    login(client)
    cookie = client.get_cookie("nc_console", path="/console/")
    assert cookie is not None
    client.set_cookie("nc_console", cookie.value[:-2] + "xx", path="/console/")
    assert client.get("/console/").status_code == 401
    # a session signed under another token (the token was rotated) is over
    rotated = console_client(db_url, engine, NC_CONNECTOR_CONSOLE_TOKEN="another-console-token-0123456789")
    rotated.set_cookie("nc_console", cookie.value, path="/console/")
    assert rotated.get("/console/").status_code == 401


def test_session_expires(console, monkeypatch):
    login(console)
    assert console.get("/console/").status_code == 200
    monkeypatch.setattr(access, "SESSION_SECONDS", -1)
    assert console.get("/console/").status_code == 401


def test_package_docstring_names_the_rules():
    assert "NC_CONNECTOR_CONSOLE_TOKEN" in (console_package.__doc__ or "")
