"""Client plumbing under the Jira gateway: the session, one request at a time, and every failure as ``JiraError``.

``JiraClient`` uses the ``jira`` library as transport only: it supplies the authenticated session
(basic auth or bearer PAT), its error parsing into ``JIRAError`` and the default headers. Every call
is one explicit HTTP request (``_send``, ``_json``), timed into ``JIRA_CALLS`` and read for Jira's
rate-limit signals (``_observe``, see ``connector.jira.pressure``).

Nothing is retried here, on purpose: Jira has no idempotency key for creates, and the ``jira``
client's own retries of a POST can create duplicates (pycontribs/jira#1484). Each failure becomes one
``JiraError`` that says whether a retry is sensible, when (Retry-After), and whether the request may
have taken effect (``outcome_unknown``); the worker decides.

The workflow value types (``IssueState``, ``StatusRef``, ``Transition``, ``ScreenField``) are part of this
module's interface but defined in the pure ``connector.jira.workflow``, so that the mapping (which may not
import the client) and the path finding there use the very same types.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any, ClassVar
from urllib.parse import quote, urlparse

import requests
from jira import JIRA
from jira.exceptions import JIRAError

from connector import __version__
from connector.http_api import APIError, json_or_none, request_failure, session_without_retries, status_line
from connector.jira.pressure import Pressure, jira_retry_after, pressure_of, stronger
from connector.jira.workflow import IssueState, ScreenField, StatusRef, Transition
from connector.metrics import JIRA_CALLS
from connector.secrets import redact
from connector.settings import ENV_PREFIX

__all__ = ["MAX_PAGES", "PAGE_SIZE", "IssueState", "JiraClient", "JiraError", "ScreenField", "StatusRef", "Transition",
           "path_segment"]

# One page of search results or comments. Label searches match one issue, rarely a handful.
PAGE_SIZE = 100
# A guard against a server that keeps handing out pages: 50 x 100 covers Cloud's 5,000 comments per issue.
MAX_PAGES = 50
# Statuses after which the request may still have taken effect: the server (or a gateway in front of
# it) failed while or after handling it. 503 and 429 are refusals before any work is done.
_MAYBE_APPLIED_STATUSES = frozenset({500, 502, 504})
_RETRYABLE_4XX = frozenset({408, 409, 429})


class JiraError(APIError):
    """A failed Jira call, classified for the worker's retry decision.

    ``message`` is Jira's own words (``errorMessages`` and ``errors`` joined), never a credential.
    ``field_errors`` is Jira's ``errors`` object of a 400 answer (field id -> message), so a caller can
    tell which field was refused (a transition screen's required ``resolution``, say); {} otherwise.
    """

    service: ClassVar[str] = "Jira"
    _repr_fields: ClassVar[tuple[str, ...]] = (*APIError._repr_fields, "outcome_unknown", "field_errors")

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 retryable: bool = False, outcome_unknown: bool = False,
                 field_errors: dict[str, str] | None = None) -> None:
        super().__init__(message, status=status, retry_after=retry_after, retryable=retryable)
        self.outcome_unknown = outcome_unknown
        self.field_errors: dict[str, str] = dict(field_errors or {})


class JiraClient:
    """The session and the request plumbing over ``jira.JIRA`` (REST v2), with client retries off and
    explicit timeouts; the gateway's calls are built on ``_send`` and ``_json``.

    Building one sends nothing: the client is created with ``get_server_info=False`` and the
    deployment type (Cloud or Server/Data Center) is read from ``serverInfo`` on first need. Auth:
    ``email`` + ``api_token`` (Cloud, basic) or ``pat`` (Data Center, bearer).
    """

    def __init__(self, url: str, *, email: str = "", api_token: str | None = None, pat: str | None = None,
                 timeout: float = 10.0) -> None:
        if not url:
            raise ValueError("a Jira URL is required")
        if bool(api_token) == bool(pat):
            raise ValueError("give either an e-mail and API token (Jira Cloud) or a PAT (Data Center)")
        if api_token and not email:
            raise ValueError("an e-mail is required with an API token")
        self._url = url.rstrip("/")
        self._api = self._url + "/rest/api/2/"
        self._secrets = _secret_forms(email, api_token, pat)
        self._client = JIRA(
            server=self._url,
            options={"rest_api_version": "2", "check_update": False,
                     "headers": {"User-Agent": f"nc-connector/{__version__}"}},
            basic_auth=(email, api_token) if api_token else None,
            token_auth=pat or None,
            timeout=timeout,  # ResilientSession passes it to every request
            max_retries=0,  # ResilientSession: one attempt, no sleep, for every method
            get_server_info=False,  # no request at construction; serverInfo is read lazily
        )
        self._session: requests.Session = self._client._session
        # Belt and braces below ResilientSession: urllib3 must not retry either.
        session_without_retries(self._session)
        self._deployment_lock = threading.Lock()
        self._cloud: bool | None = None
        self._seen = threading.local()  # .pressure: the strongest signal this thread has met

    def close(self) -> None:
        self._session.close()

    def take_pressure(self) -> Pressure | None:
        seen: Pressure | None = getattr(self._seen, "pressure", None)
        self._seen.pressure = None
        return seen

    def _is_cloud(self) -> bool:
        """Cloud or Server/Data Center, from serverInfo (read once, on first need)."""
        with self._deployment_lock:
            if self._cloud is None:
                info = self._json("server_info", "GET", "serverInfo", dict)
                self._cloud = _is_cloud_info(info, self._url)
            return self._cloud

    def _json(self, op: str, method: str, path: str, kind: type[Any], *, params: dict[str, Any] | None = None,
              body: Any = None) -> Any:
        """Send and return the decoded JSON answer, which must be of ``kind`` (dict or list)."""
        response = self._send(op, method, path, params=params, body=body)
        data = json_or_none(response, kind)
        if data is None:
            raise JiraError(f"unexpected answer to {method} {path}: not a JSON {kind.__name__}",
                            status=response.status_code, retryable=True, outcome_unknown=method != "GET")
        return data

    def _send(self, op: str, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: Any = None) -> requests.Response:
        """One request, timed into JIRA_CALLS; every failure becomes a JiraError."""
        started = time.perf_counter()
        status = "error"
        try:
            response = self._session.request(
                method, self._api + path, params=params,
                data=None if body is None else json.dumps(body),
                # A redirect would turn a POST into a GET (and may strip auth): report it instead.
                allow_redirects=False)
            status = str(response.status_code)
            self._observe(response)
            if response.is_redirect:
                raise JiraError(f"Jira redirected to {response.headers.get('Location')!r}: "
                                f"set {ENV_PREFIX}JIRA_URL to the final address", status=response.status_code)
            return response
        except JIRAError as exc:
            status = str(exc.status_code or "error")
            if isinstance(exc.response, requests.Response):
                self._observe(exc.response)
            raise self._from_jira_error(exc) from None  # the JIRAError's str() dumps headers and cookies
        except requests.RequestException as exc:
            status = "timeout" if isinstance(exc, requests.Timeout) else "connection_error"
            failure = request_failure(exc, self._secrets)
            raise JiraError(failure.message, retryable=failure.retryable, outcome_unknown=failure.maybe_sent) from None
        finally:
            JIRA_CALLS.labels(method=op, status=status).observe(time.perf_counter() - started)

    def _observe(self, response: requests.Response) -> None:
        """Keep the answer's rate-limit signal for take_pressure(), if it is the strongest so far."""
        found = pressure_of(response)
        if found is not None:
            self._seen.pressure = stronger(getattr(self._seen, "pressure", None), found)

    def _from_jira_error(self, exc: JIRAError) -> JiraError:
        response = exc.response if isinstance(exc.response, requests.Response) else None
        code = exc.status_code or (response.status_code if response is not None else None)
        if response is None or code is None:
            return JiraError(redact(exc.text or "no answer from Jira", self._secrets), retryable=True,
                             outcome_unknown=True)
        field_errors = ({name: redact(text, self._secrets) for name, text in _field_errors(response).items()}
                        if code == 400 else {})
        return JiraError(redact(_response_message(response), self._secrets), status=code,
                         retry_after=jira_retry_after(response) if code in (429, 503) else None,
                         retryable=code in _RETRYABLE_4XX or code >= 500,
                         outcome_unknown=code in _MAYBE_APPLIED_STATUSES, field_errors=field_errors)


# -- helpers (pure) -------------------------------------------------------------------------------


def _secret_forms(email: str, api_token: str | None, pat: str | None) -> list[str]:
    """Each credential, and the basic-auth header value built from it."""
    found = [s for s in (api_token, pat) if s]
    if api_token:
        found.append(base64.b64encode(f"{email}:{api_token}".encode()).decode())
    return found


def path_segment(value: str) -> str:
    """A value as one URL path segment."""
    return quote(str(value), safe="")


def _is_cloud_info(info: dict[str, Any], url: str) -> bool:
    """serverInfo says ``deploymentType``; older answers lack it, so fall back to Cloud's tell-tales."""
    deployment = info.get("deploymentType")
    if deployment:
        return str(deployment).casefold() == "cloud"
    versions = info.get("versionNumbers") or [0]
    host = urlparse(url).hostname or ""
    return int(versions[0]) >= 1000 or host.endswith((".atlassian.net", ".jira.com"))


def _field_errors(response: requests.Response) -> dict[str, str]:
    """Jira's ``errors`` object (field id -> message); {} when the answer has none."""
    data = json_or_none(response, dict)
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, dict):
        return {}
    return {str(field): str(text) for field, text in errors.items()}


def _response_message(response: requests.Response) -> str:
    """Jira's error text: errorMessages, then ``field: message`` for each entry of errors."""
    data = json_or_none(response, dict)
    parts: list[str] = []
    if isinstance(data, dict):
        messages = data.get("errorMessages") or []
        parts += [str(m) for m in (messages if isinstance(messages, list) else [messages])]
        errors = data.get("errors")
        if isinstance(errors, dict):
            parts += [f"{field}: {text}" for field, text in errors.items()]
        for key in ("message", "errorMessage"):
            if not parts and data.get(key):
                parts.append(str(data[key]))
    denied = response.headers.get("X-Authentication-Denied-Reason")
    if denied:
        parts.append(f"authentication denied: {denied}")
    if not parts:
        # Not Jira's JSON (a proxy page, say): the status line is the useful part, not the HTML.
        parts.append(status_line(response))
    return "; ".join(parts)
