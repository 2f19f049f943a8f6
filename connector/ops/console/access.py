"""Who may use the console, and how a request proves it.

- A session: the login form takes the token and sets a signed cookie (HttpOnly, SameSite=Strict, Secure
  behind TLS, path /console/, 8 hours), or `Authorization: Bearer <token>` on each request (scripts).
- Every POST (login, logout, replay, mapping preview) carries a CSRF token tied to the session cookie and
  passes an Origin check: a POST without a valid token is refused (403), also when it carries the bearer.
- The token is compared in constant time and never written anywhere: the cookie carries a random CSRF
  value and a flag, signed with a key derived from the token (rotating the token ends every session).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Response, current_app, g, redirect, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

log = logging.getLogger("connector.ops.console")

COOKIE = "nc_console"
COOKIE_PATH = "/console/"
SESSION_SECONDS = 8 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_ENDPOINTS = frozenset({"console.login", "console.login_post", "console.bare", "console.static"})

# Strict by design: no script at all, styles only from our own static file, forms only to ourselves.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A request the access rules refuse: 401 or 403, with a message that never names the token."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Session:
    csrf: str
    authenticated: bool

    @classmethod
    def fresh(cls, authenticated: bool = False) -> Session:
        return cls(secrets.token_urlsafe(32), authenticated)


def _token() -> str:
    token: str = current_app.config["NC_CONSOLE_TOKEN"]
    return token


def _serializer() -> URLSafeTimedSerializer:
    key = hmac.new(_token().encode(), b"nc-connector console session v1", hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt="nc-connector-console")


def token_matches(candidate: str) -> bool:
    """Constant time, also in the length: both sides are hashed to 32 bytes before the comparison."""
    given = hashlib.sha256(candidate.encode("utf-8", "surrogateescape")).digest()
    expected = hashlib.sha256(_token().encode()).digest()
    return hmac.compare_digest(given, expected)


def read_session() -> Session | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data: Any = _serializer().loads(raw, max_age=SESSION_SECONDS)
    except BadSignature:  # also an expired one (SignatureExpired is a BadSignature)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    return Session(data["csrf"], data.get("auth") is True)


def session() -> Session:
    """This request's session; an anonymous one (a CSRF value only) is started when there is none."""
    current: Session | None = g.get("console_session")
    if current is None:
        current = read_session() or start_session(Session.fresh())
        g.console_session = current
    return current


def start_session(new: Session) -> Session:
    """Use `new` from now on and send its cookie with this response (after_request writes it)."""
    g.console_session = new
    g.console_cookie = new
    return new


def end_session() -> None:
    g.console_cookie = "delete"


def is_secure() -> bool:
    """TLS here, or at the proxy in front of us (its X-Forwarded-Proto): then the cookie is Secure."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.is_secure or forwarded == "https"


def bearer_ok() -> bool:
    """The request carries the right bearer token (checked once per request)."""
    if "console_bearer" not in g:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        g.console_bearer = scheme.lower() == "bearer" and bool(value.strip()) and token_matches(value.strip())
    return bool(g.console_bearer)


def has_bearer() -> bool:
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


def check_origin() -> None:
    """A cross-site POST is refused: an Origin (or a Fetch-Metadata site) other than our own."""
    origin = request.headers.get("Origin")
    expected = f"{'https' if is_secure() else 'http'}://{request.host}"
    if origin is not None and origin.lower() != expected.lower():
        log.warning("console: refused a POST from another origin", extra={"origin": origin[:200],
                                                                             "path": request.path})
        raise Refused(403, "cross-site request refused: its Origin is not this console's")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(403, "cross-site request refused (Sec-Fetch-Site: " + site[:20] + ")")


def check_csrf() -> None:
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    current = read_session()
    if current is None or not given or not hmac.compare_digest(given.encode(), current.csrf.encode()):
        raise Refused(403, "missing or invalid CSRF token: reload the page and try again")
    g.console_session = current


def guard() -> Response | None:
    """before_request for the console: Origin and CSRF on every POST, then credentials on every page."""
    if request.endpoint == "console.static":
        return None
    if request.method == "POST":
        check_origin()
        check_csrf()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    current = read_session()  # only read: a refused request must not replace a cookie with an anonymous one
    if bearer_ok() or (current is not None and current.authenticated):
        g.console_session = current
        return None
    if has_bearer() or not request.accept_mimetypes.accept_html or request.method == "POST":
        raise Refused(401, "log in at /console/login, or send Authorization: Bearer <console token>")
    target = quote(request.full_path.rstrip("?"), safe="/")
    return redirect(f"/console/login?next={target}", 303)  # type: ignore[return-value]


def safe_next(target: str | None) -> str:
    """Where to go after login: a path of the console only, never another site (//evil.example)."""
    if not target:
        return "/console/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/console/") or "\\" in target:
        return "/console/"
    return target


def finish(response: Response) -> Response:
    """after_request for every /console response (also errors and 404s): cookie and security headers."""
    cookie = g.get("console_cookie")
    if cookie == "delete":
        response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=is_secure(), httponly=True, samesite="Strict")
    elif isinstance(cookie, Session):
        value = _serializer().dumps({"csrf": cookie.csrf, "auth": cookie.authenticated})
        response.set_cookie(COOKIE, value, path=COOKIE_PATH, secure=is_secure(), httponly=True, samesite="Strict")
    current: Session | None = g.get("console_session")
    if current is not None and response.mimetype == "text/html":
        response.headers[CSRF_HEADER] = current.csrf  # for scripts: the value their POSTs must carry
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response
