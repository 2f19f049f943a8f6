"""The narrow Jira gateway: the few Jira calls the sync engine makes, over REST API v2.

``JiraGateway`` is the interface the sync logic depends on (tests use a fake). ``JiraClientGateway``
implements it with the ``jira`` library, used as transport only: it supplies the authenticated
session (basic auth or bearer PAT), its error parsing into ``JIRAError`` and the default headers.
Every call is one explicit HTTP request built here, because several high-level ``jira.JIRA`` methods
send extra requests (``create_issue`` re-fetches the issue, ``add_remote_link`` lists application
links first, ``search_issues`` loads ``/field``) or bodies the spec does not describe
(``transition_issue`` sends the transition id as a number).

Nothing is retried here, on purpose: Jira has no idempotency key for creates, and the ``jira``
client's own retries of a POST can create duplicates (pycontribs/jira#1484). Each failure becomes one
``JiraError`` that says whether a retry is sensible, when (Retry-After), and whether the request may
have taken effect (``outcome_unknown``); the worker decides.

Every answer is also read for Jira's rate-limit signals (``X-RateLimit-NearLimit: true``, sent once
less than 20% of a budget is left; a 429; a 503 with Retry-After): ``take_pressure()`` hands the
strongest one this thread's calls met to the caller, which shares it with the other workers.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote, urlparse

import requests
from jira import JIRA
from jira.exceptions import JIRAError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from connector import __version__
from connector.mapping.load import FieldInfo  # the mapping's own description of a field (brief: one class)
from connector.metrics import JIRA_CALLS
from connector.settings import ENV_PREFIX

__all__ = [
    "FieldInfo",
    "IssueState",
    "JiraClientGateway",
    "JiraError",
    "JiraGateway",
    "Pressure",
    "Transition",
    "gateway_from_settings",
]

# One page of search results or comments. Label searches match one issue, rarely a handful.
PAGE_SIZE = 100
# A guard against a server that keeps handing out pages: 50 x 100 covers Cloud's 5,000 comments per issue.
MAX_PAGES = 50
# Permissions the connector needs in the target project (mypermissions keys, Cloud and Data Center).
REQUIRED_PERMISSIONS = ("BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "TRANSITION_ISSUES",
                        "ADD_COMMENTS", "LINK_ISSUES")
# Statuses after which the request may still have taken effect: the server (or a gateway in front of
# it) failed while or after handling it. 503 and 429 are refusals before any work is done.
_MAYBE_APPLIED_STATUSES = frozenset({500, 502, 504})
_RETRYABLE_4XX = frozenset({408, 409, 429})
_REDACTED = "<secret>"


class JiraError(Exception):
    """A failed Jira call, classified for the worker's retry decision.

    ``message`` is Jira's own words (``errorMessages`` and ``errors`` joined), never a credential.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 retryable: bool = False, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.retryable = retryable
        self.outcome_unknown = outcome_unknown

    def __str__(self) -> str:
        return f"Jira HTTP {self.status}: {self.message}" if self.status else f"Jira: {self.message}"

    def __repr__(self) -> str:
        return (f"JiraError(status={self.status!r}, message={self.message!r}, retry_after={self.retry_after!r}, "
                f"retryable={self.retryable!r}, outcome_unknown={self.outcome_unknown!r})")


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    to_status: str


@dataclass(frozen=True)
class IssueState:
    """An issue's workflow state as read back: ``key`` is the current key (Jira answers for an old key
    after a move); ``transitions`` are the ones available from ``status``."""

    key: str
    status: str
    transitions: list[Transition]


@dataclass(frozen=True)
class Pressure:
    """Jira asked us to slow down: ``X-RateLimit-NearLimit: true``, a 429, or a 503 with Retry-After."""

    status: int
    near_limit: bool
    retry_after: float | None = None  # seconds, from a 429's or 503's Retry-After (or X-RateLimit-Reset)
    remaining: int | None = None  # X-RateLimit-Remaining, when Jira sent it
    reason: str | None = None  # RateLimit-Reason (which limit), when Jira sent it


class JiraGateway(Protocol):
    """What the sync engine needs from Jira. Every method raises ``JiraError`` on failure.

    ``take_pressure`` returns (and forgets) the strongest rate-limit signal that the calling thread's
    calls have met since it last asked, or None.
    """

    def take_pressure(self) -> Pressure | None: ...

    def find_issues_by_label(self, label: str, project: str) -> list[str]: ...

    def create_issue(self, fields: dict[str, Any]) -> str: ...

    def update_issue(self, key: str, fields: dict[str, Any]) -> None: ...

    def get_issue(self, key: str) -> IssueState: ...

    def transition_issue(self, key: str, transition_id: str) -> None: ...

    def add_comment(self, key: str, body: str) -> str: ...

    def comments(self, key: str) -> list[tuple[str, str]]: ...

    def upsert_remote_link(self, key: str, link: dict[str, Any]) -> None: ...

    def fields(self) -> list[FieldInfo]: ...

    def account_id(self, email: str) -> str | None: ...

    def check_project(self, project: str, issue_type: str) -> list[str]: ...


class JiraClientGateway:
    """``JiraGateway`` over ``jira.JIRA`` (REST v2), with client retries off and explicit timeouts.

    Building one sends nothing: the client is created with ``get_server_info=False`` and the
    deployment type (Cloud or Server/Data Center, which decides the search endpoint) is read from
    ``serverInfo`` on first need. Auth: ``email`` + ``api_token`` (Cloud, basic) or ``pat`` (Data
    Center, bearer).
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
            max_retries=0,  # ResilientSession: one attempt, no sleep, for every method (see _no_retries)
            get_server_info=False,  # no request at construction; serverInfo is read lazily
        )
        self._session: requests.Session = self._client._session
        _no_retries(self._session)
        self._deployment_lock = threading.Lock()
        self._cloud: bool | None = None
        self._seen = threading.local()  # .pressure: the strongest signal this thread has met

    def close(self) -> None:
        self._session.close()

    def take_pressure(self) -> Pressure | None:
        seen: Pressure | None = getattr(self._seen, "pressure", None)
        self._seen.pressure = None
        return seen

    # -- the gateway ------------------------------------------------------------------------------

    def find_issues_by_label(self, label: str, project: str) -> list[str]:
        """Keys of the project's issues with exactly this label, oldest first.

        Cloud uses ``GET search/jql`` (token pages); Server/Data Center ``GET search`` (startAt pages).
        Jira's search index may lag a create by a few seconds: an empty answer right after a create
        does not prove there is no issue.
        """
        jql = f"project = {_jql_string(project)} AND labels = {_jql_string(label)} ORDER BY created ASC"
        if self._is_cloud():
            return self._search_cloud(jql)
        return self._search_server(jql)

    def create_issue(self, fields: dict[str, Any]) -> str:
        """POST issue, exactly once; returns the new key.

        A ``project`` or ``issuetype`` given as a plain string is sent as ``{"key": ...}`` /
        ``{"name": ...}`` so that creating stays a single request.
        """
        response = self._send("create_issue", "POST", "issue", body={"fields": _normalise_create(fields)})
        key = (_json_or_none(response, dict) or {}).get("key")
        if not isinstance(key, str) or not key:
            # The create was accepted but we cannot tell which issue it made: treat as unknown outcome.
            raise JiraError("Jira accepted the create but its answer has no issue key",
                            status=response.status_code, retryable=True, outcome_unknown=True)
        return key

    def update_issue(self, key: str, fields: dict[str, Any]) -> None:
        self._send("update_issue", "PUT", f"issue/{_seg(key)}", body={"fields": fields})

    def get_issue(self, key: str) -> IssueState:
        """Status and available transitions in ONE request (``expand=transitions``), not two."""
        data = self._json("get_issue", "GET", f"issue/{_seg(key)}", dict,
                          params={"fields": "status", "expand": "transitions"})
        status = ((data.get("fields") or {}).get("status") or {}).get("name", "")
        transitions = [Transition(id=str(t.get("id", "")), name=str(t.get("name", "")),
                                  to_status=str((t.get("to") or {}).get("name", "")))
                       for t in data.get("transitions") or [] if isinstance(t, dict)]
        return IssueState(key=str(data.get("key") or key), status=str(status), transitions=transitions)

    def transition_issue(self, key: str, transition_id: str) -> None:
        # The spec types the transition id as a string (the jira client would send a number).
        self._send("transition_issue", "POST", f"issue/{_seg(key)}/transitions",
                   body={"transition": {"id": str(transition_id)}})

    def add_comment(self, key: str, body: str) -> str:
        """Add a plain-text (v2, wiki markup) comment; returns its id."""
        data = self._json("add_comment", "POST", f"issue/{_seg(key)}/comment", dict, body={"body": body})
        if not data.get("id"):
            raise JiraError("Jira accepted the comment but its answer has no comment id",
                            status=201, retryable=True, outcome_unknown=True)
        return str(data["id"])

    def comments(self, key: str) -> list[tuple[str, str]]:
        """(id, body) of every comment on the issue, oldest first (v2 bodies are plain strings)."""
        found: list[tuple[str, str]] = []
        for _ in range(MAX_PAGES):
            params = {"startAt": len(found), "maxResults": PAGE_SIZE, "orderBy": "created"}
            page = self._json("comments", "GET", f"issue/{_seg(key)}/comment", dict, params=params)
            batch = [c for c in page.get("comments") or [] if isinstance(c, dict)]
            found += [(str(c.get("id", "")), c["body"] if isinstance(c.get("body"), str) else str(c.get("body", "")))
                      for c in batch]
            if not batch or len(found) >= int(page.get("total") or 0):
                break
        return found

    def upsert_remote_link(self, key: str, link: dict[str, Any]) -> None:
        """Create or update (same ``globalId``) a remote link: ``{"globalId", "object": {"url", "title"}}``."""
        if not link.get("globalId"):
            # Without a globalId every call would add another link instead of updating the one.
            raise ValueError("a remote link needs a globalId so that posting it again updates it")
        obj = link.get("object") or {}
        if not (obj.get("url") and obj.get("title")):
            raise ValueError("a remote link needs object.url and object.title")
        self._send("upsert_remote_link", "POST", f"issue/{_seg(key)}/remotelink", body=link)

    def fields(self) -> list[FieldInfo]:
        return [_field_info(raw) for raw in self._json("fields", "GET", "field", list)]

    def account_id(self, email: str) -> str | None:
        """The id a user field takes for this e-mail: accountId on Cloud, user name on Server/DC.

        None when no active user, or no single user, matches.
        """
        cloud = self._is_cloud()
        params = {"query": email} if cloud else {"username": email}
        users = [u for u in self._json("account_id", "GET", "user/search", list, params=params)
                 if isinstance(u, dict) and u.get("active", True)]
        user = _pick_user(users, email)
        if user is None:
            return None
        ident = user.get("accountId") if cloud else user.get("name")
        return str(ident) if ident else None

    def check_project(self, project: str, issue_type: str) -> list[str]:
        """Problems that would stop the connector in this project (empty when all is well).

        Checks that the project is visible, the issue type exists in it, the user holds the
        permissions the connector needs and that ``labels`` (how issues are found again) is on the
        create screen. Failures to ask are reported as problems too.
        """
        try:
            data = self._json("check_project", "GET", f"project/{_seg(project)}", dict)
        except JiraError as exc:
            if exc.status == 404:
                return [f"project {project!r} does not exist or the Jira user cannot browse it"]
            return [f"cannot read project {project!r}: {exc}"]
        problems: list[str] = []
        type_id = _issue_type_id(data, issue_type)
        if type_id is None:
            names = ", ".join(sorted(str(t.get("name")) for t in data.get("issueTypes") or []))
            problems.append(f"issue type {issue_type!r} is not available in project {project!r} "
                            f"(available: {names or 'none'})")
        problems += self._permission_problems(project)
        if type_id is not None:
            problems += self._create_screen_problems(project, issue_type, type_id)
        return problems

    # -- search -----------------------------------------------------------------------------------

    def _search_cloud(self, jql: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"jql": jql, "fields": "key", "maxResults": PAGE_SIZE}
            if token:
                params["nextPageToken"] = token
            page = self._json("find_issues_by_label", "GET", "search/jql", dict, params=params)
            keys += _issue_keys(page)
            next_token = page.get("nextPageToken")
            if not next_token or page.get("isLast") or next_token == token:
                break
            token = str(next_token)
        return keys

    def _search_server(self, jql: str) -> list[str]:
        keys: list[str] = []
        for _ in range(MAX_PAGES):
            params = {"jql": jql, "fields": "key", "startAt": len(keys), "maxResults": PAGE_SIZE}
            page = self._json("find_issues_by_label", "GET", "search", dict, params=params)
            found = _issue_keys(page)
            keys += found
            if not found or len(keys) >= int(page.get("total") or 0):
                break
        return keys

    # -- project checks ---------------------------------------------------------------------------

    def _permission_problems(self, project: str) -> list[str]:
        params = {"projectKey": project, "permissions": ",".join(REQUIRED_PERMISSIONS)}
        try:
            data = self._json("check_project", "GET", "mypermissions", dict, params=params)
        except JiraError as exc:
            return [f"cannot read the Jira user's permissions in {project!r}: {exc}"]
        held = data.get("permissions") or {}
        return [f"the Jira user lacks the {name} permission in project {project!r}"
                for name in REQUIRED_PERMISSIONS if not (held.get(name) or {}).get("havePermission")]

    def _create_screen_problems(self, project: str, issue_type: str, type_id: str) -> list[str]:
        path = f"issue/createmeta/{_seg(project)}/issuetypes/{_seg(type_id)}"
        try:
            data = self._json("check_project", "GET", path, dict, params={"maxResults": 200})
        except JiraError as exc:
            return [f"cannot read the create screen of {project}/{issue_type}: {exc}"]
        # Cloud names the list "fields", Data Center (8.4+) "values".
        ids = {str(f.get("fieldId")) for f in data.get("fields") or data.get("values") or []}
        if "labels" not in ids:
            return [f"the labels field is not on the create screen of {project}/{issue_type}: "
                    "the connector finds its issues again by label"]
        return []

    # -- transport --------------------------------------------------------------------------------

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
        data = _json_or_none(response, kind)
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
            raise self._from_requests_error(exc) from None
        finally:
            JIRA_CALLS.labels(method=op, status=status).observe(time.perf_counter() - started)

    def _observe(self, response: requests.Response) -> None:
        """Keep the answer's rate-limit signal for take_pressure(), if it is the strongest so far."""
        found = _pressure(response)
        if found is not None:
            self._seen.pressure = _stronger(getattr(self._seen, "pressure", None), found)

    def _from_jira_error(self, exc: JIRAError) -> JiraError:
        response = exc.response if isinstance(exc.response, requests.Response) else None
        code = exc.status_code or (response.status_code if response is not None else None)
        if response is None or code is None:
            return JiraError(self._scrub(exc.text or "no answer from Jira"), retryable=True, outcome_unknown=True)
        return JiraError(self._scrub(_response_message(response)), status=code,
                         retry_after=_retry_after(response) if code in (429, 503) else None,
                         retryable=code in _RETRYABLE_4XX or code >= 500,
                         outcome_unknown=code in _MAYBE_APPLIED_STATUSES)

    def _from_requests_error(self, exc: requests.RequestException) -> JiraError:
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                            requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader)):
            return JiraError(self._scrub(f"invalid request: {exc}"))
        kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
        return JiraError(self._scrub(f"{kind}: {exc}"), retryable=True, outcome_unknown=_maybe_sent(exc))

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return text


def gateway_from_settings(settings: Any) -> JiraClientGateway:
    """A gateway from validated settings; ValueError names the missing or conflicting setting."""
    url, email = settings.jira_url, settings.jira_email
    token, pat = settings.jira_api_token, settings.jira_pat
    if not url:
        raise ValueError(f"{ENV_PREFIX}JIRA_URL is not set")
    if token and pat:
        raise ValueError(f"set either {ENV_PREFIX}JIRA_API_TOKEN (Cloud) or {ENV_PREFIX}JIRA_PAT "
                         "(Data Center), not both")
    if token and not email:
        raise ValueError(f"{ENV_PREFIX}JIRA_EMAIL is required with {ENV_PREFIX}JIRA_API_TOKEN")
    if not token and not pat:
        raise ValueError(f"no Jira credentials: set {ENV_PREFIX}JIRA_EMAIL and {ENV_PREFIX}JIRA_API_TOKEN "
                         f"(Jira Cloud) or {ENV_PREFIX}JIRA_PAT (Data Center)")
    return JiraClientGateway(url, email=email or "", api_token=token, pat=pat, timeout=settings.jira_timeout)


# -- helpers (pure) -------------------------------------------------------------------------------


def _no_retries(session: requests.Session) -> None:
    """Belt and braces below ResilientSession: urllib3 must not retry either.

    ``Retry(0, read=False)`` is requests' own default, stated here so that a changed default cannot
    bring retries back; ``read=False`` keeps a read timeout a ReadTimeout (with ``read=0`` urllib3
    would wrap it into a MaxRetryError and requests would report a ConnectionError).
    """
    adapter = HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=False))
    session.mount("https://", adapter)
    session.mount("http://", adapter)


def _secret_forms(email: str, api_token: str | None, pat: str | None) -> list[str]:
    """Each credential, and the basic-auth header value built from it, longest first."""
    found = [s for s in (api_token, pat) if s]
    if api_token:
        found.append(base64.b64encode(f"{email}:{api_token}".encode()).decode())
    return sorted(found, key=len, reverse=True)


def _seg(value: str) -> str:
    """A value as one URL path segment."""
    return quote(str(value), safe="")


def _jql_string(value: str) -> str:
    """A JQL string literal: double quotes, with backslash and quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _normalise_create(fields: dict[str, Any]) -> dict[str, Any]:
    result = dict(fields)
    if isinstance(result.get("project"), str):
        result["project"] = {"key": result["project"]}
    if isinstance(result.get("issuetype"), str):
        result["issuetype"] = {"name": result["issuetype"]}
    return result


def _json_or_none(response: requests.Response, kind: type[Any]) -> Any:
    """The decoded body when it is JSON of ``kind``, else None (an empty body included)."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, kind) else None


def _issue_keys(page: dict[str, Any]) -> list[str]:
    return [str(issue["key"]) for issue in page.get("issues") or [] if isinstance(issue, dict) and issue.get("key")]


def _field_info(raw: dict[str, Any]) -> FieldInfo:
    schema = raw.get("schema") or {}
    items = schema.get("items")
    return FieldInfo(id=str(raw.get("id", "")), name=str(raw.get("name", "")),
                     schema_type=str(schema.get("type", "")), items=str(items) if items else None)


def _pick_user(users: list[dict[str, Any]], email: str) -> dict[str, Any] | None:
    """The user whose e-mail matches exactly; else the only result (Cloud often hides e-mails)."""
    exact = [u for u in users if str(u.get("emailAddress", "")).casefold() == email.casefold()]
    if len(exact) == 1:
        return exact[0]
    if not exact and len(users) == 1:
        return users[0]
    return None


def _issue_type_id(project: dict[str, Any], issue_type: str) -> str | None:
    """The id of the project's issue type of this name; an exact match wins over a case-blind one."""
    types = {str(t.get("name", "")): str(t.get("id")) for t in project.get("issueTypes") or []
             if isinstance(t, dict)}
    if issue_type in types:
        return types[issue_type]
    blind = [ident for name, ident in types.items() if name.casefold() == issue_type.casefold()]
    return blind[0] if len(blind) == 1 else None


def _is_cloud_info(info: dict[str, Any], url: str) -> bool:
    """serverInfo says ``deploymentType``; older answers lack it, so fall back to Cloud's tell-tales."""
    deployment = info.get("deploymentType")
    if deployment:
        return str(deployment).casefold() == "cloud"
    versions = info.get("versionNumbers") or [0]
    host = urlparse(url).hostname or ""
    return int(versions[0]) >= 1000 or host.endswith((".atlassian.net", ".jira.com"))


def _response_message(response: requests.Response) -> str:
    """Jira's error text: errorMessages, then ``field: message`` for each entry of errors."""
    try:
        data = response.json()
    except ValueError:
        data = None
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
        parts.append(f"HTTP {response.status_code} {response.reason or ''}".strip())
    return "; ".join(parts)


def _retry_after(response: requests.Response, now: datetime | None = None) -> float | None:
    """Seconds to wait: Retry-After (seconds or HTTP date), else Cloud's X-RateLimit-Reset (ISO time)."""
    now = now or datetime.now(UTC)
    raw = response.headers.get("Retry-After")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
        try:
            return max(0.0, (parsedate_to_datetime(raw) - now).total_seconds())
        except (TypeError, ValueError):
            return None
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, (datetime.fromisoformat(reset.replace("Z", "+00:00")) - now).total_seconds())
        except ValueError:
            return None
    return None


def _pressure(response: requests.Response) -> Pressure | None:
    """The answer's rate-limit signal: NearLimit true, a 429, or a 503 with Retry-After; else None."""
    code = response.status_code
    near = response.headers.get("X-RateLimit-NearLimit", "").strip().casefold() == "true"
    retry_after = _retry_after(response) if code in (429, 503) else None
    if not (near or code == 429 or retry_after is not None):
        return None
    remaining = response.headers.get("X-RateLimit-Remaining", "").strip()
    return Pressure(status=code, near_limit=near, retry_after=retry_after,
                    remaining=int(remaining) if remaining.isdigit() else None,
                    reason=response.headers.get("RateLimit-Reason"))


def _stronger(old: Pressure | None, new: Pressure) -> Pressure:
    """The signal asking for the longer wait; the newer one on a tie."""
    if old is None or (new.retry_after or 0.0) >= (old.retry_after or 0.0):
        return new
    return old


def _maybe_sent(exc: requests.RequestException) -> bool:
    """Whether the request may have reached Jira: False only when the connection never opened."""
    # An SSLError is not listed: TLS can also fail while the answer is being read, after the send.
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return False
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    # NameResolutionError is a NewConnectionError; refused and unreachable are too.
    return not isinstance(cause, (NewConnectionError, ConnectTimeoutError))
