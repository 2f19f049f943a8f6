"""Every setting of nc-connector, declared once: env name, type, default, whether it is a secret.

Values come from the environment, or from an optional TOML config file named by
``NC_CONNECTOR_CONFIG_FILE`` (keys are the setting names, e.g. ``database_url``); the
environment wins. ``load_settings`` validates everything at start-up and raises
``SettingsError`` naming the bad key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.secrets import REDACTED, Secret

ENV_PREFIX = "NC_CONNECTOR_"
CONFIG_FILE_ENV = ENV_PREFIX + "CONFIG_FILE"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the key."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(raw: str) -> float:
    """'7d', '12h', '30m', '45s' or plain seconds -> seconds."""
    match = _DURATION.match(raw)
    if not match:
        raise ValueError(f"expected a duration such as 7d, 12h, 30m or 45s, got {raw!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


def _span(raw: str) -> float:
    """A duration that may be 0 ("0s": no span at all)."""
    return 0.0 if raw.strip() in ("0", "0s", "0m", "0h", "0d") else parse_duration(raw)


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _prefixes(raw: str) -> tuple[str, ...]:
    """Qualio event-code prefixes ("NCR, DEV"): letters only, at least one."""
    found = _csv(raw)
    bad = [p for p in found if not p.isascii() or not p.isalpha()]
    if bad or not found:
        raise ValueError(f"expected comma-separated letter prefixes such as NCR, got {raw!r}")
    return found


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


def _console_token(raw: str) -> str:
    # A guessable token would open the console (and its replay button) to anyone who reaches it.
    value = raw.strip()
    if len(value) < 16:
        raise ValueError("must be at least 16 characters")
    return value


def _http_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value


def _database_url(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
        raise ValueError("expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    return value


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting."""

    name: str
    parse: Callable[[str], Any]
    type_name: str
    default: str | None
    doc: str
    secret: bool = False
    required: bool = False  # the worker cannot sync without it (serve and the receiver can)

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", _database_url, "url", "sqlite:///nc-connector.db",
            "SQLAlchemy URL: an SQLite file (default, relative to the working directory) "
            "or postgresql+psycopg://user@host/db."),
    Setting("webhook_secret", _csv, "list[secret]", None,
            "Standard Webhooks secret(s), whsec_ + base64; several, comma-separated, are all accepted.",
            secret=True),
    Setting("webhook_token", lambda raw: raw.strip(), "secret", None,
            "Static token accepted as 'Authorization: Bearer <token>' from senders that cannot sign.",
            secret=True),
    Setting("allow_unsigned", _bool, "bool", "false",
            "Accept unauthenticated deliveries. For trials only: logs a warning at start-up."),
    Setting("max_body_bytes", _positive_int, "int", "1048576", "Largest accepted webhook body, in bytes."),
    Setting("signature_tolerance", parse_duration, "duration", "5m",
            "How far a webhook-timestamp may be from now, either way."),
    Setting("fingerprint_retention", parse_duration, "duration", "7d",
            "How long fingerprints are kept (by last sighting). Keep it above the sender's retry horizon."),
    Setting("fingerprint_exclude", _csv, "list[str]", "",
            "Payload fields left out of the fingerprint (dotted paths), for values that change between "
            "retries of one delivery."),
    Setting("delivery_retention", parse_duration, "duration", "30d",
            "How long finished (done, ignored) deliveries are kept."),
    Setting("jira_url", _http_url, "url", "", "Base URL of Jira, e.g. https://example.atlassian.net.",
            required=True),
    Setting("jira_email", lambda raw: raw.strip(), "str", "", "Jira Cloud account e-mail (with jira_api_token)."),
    Setting("jira_api_token", lambda raw: raw.strip(), "secret", None,
            "Jira Cloud API token (basic auth with jira_email).", secret=True),
    Setting("jira_pat", lambda raw: raw.strip(), "secret", None,
            "Jira Data Center personal access token (bearer).", secret=True),
    Setting("jira_project", lambda raw: raw.strip(), "str", "",
            "Key of the Jira project NCs go to (or issue.project in the mapping file).", required=True),
    Setting("jira_timeout", _positive_float, "float", "10", "Seconds before a Jira call times out."),
    Setting("jira_search_lag", parse_duration, "duration", "60s",
            "How long a Jira write whose answer was lost (timeout, dropped connection) may take to show, search "
            "index lag included: such a create, edit or comment is not repeated before this."),
    Setting("mapping_file", lambda raw: raw.strip(), "path", "",
            "Mapping file (TOML). Empty: the shipped mappings/default.toml."),
    Setting("qualio_api_key", lambda raw: raw.strip(), "secret", None,
            "Qualio API key; when set, thin events are enriched from Qualio's API.", secret=True),
    Setting("qualio_url", _http_url, "url", "https://api.qualio.com", "Base URL of Qualio's API."),
    Setting("qualio_max_per_minute", _positive_int, "int", "200",
            "Qualio API requests per minute for the whole installation: every worker's enrichment and the "
            "reconcile share it through the database (Qualio allows 200 per API key)."),
    Setting("qualio_nc_prefixes", _prefixes, "list[str]", "NCR",
            "Qualio event-template prefixes whose events are NCs (comma-separated): what reconcile sweeps."),
    Setting("qualio_page_size", _positive_int, "int", "100",
            "Events per page when reconcile sweeps Qualio's event list."),
    Setting("reconcile_interval", _span, "duration", "1h",
            "How often the worker reconciles with Qualio's API (when a Qualio API key is set); 0 turns it off."),
    Setting("worker_poll_interval", parse_duration, "duration", "0.5s",
            "How often an idle worker looks for due deliveries."),
    Setting("worker_lease", parse_duration, "duration", "120s",
            "How long a claim lasts before another worker may take it over."),
    Setting("worker_heartbeat", parse_duration, "duration", "2s",
            "How often each worker records its heartbeat (the workers table), also while a sync is in flight. "
            "serve's /readyz answers 503 once the worker it runs has missed 3 beats."),
    Setting("worker_stop_timeout", parse_duration, "duration", "20s",
            "On SIGTERM, how long a worker lets the sync in flight finish; past that it gives the sync up, "
            "releases its claims for the next worker and exits."),
    Setting("worker_restart_limit", _positive_int, "int", "5",
            "serve restarts its worker whenever it exits or dies, with backoff; after this many exits within "
            "worker_restart_window, serve gives up and exits non-zero (for systemd to restart the unit)."),
    Setting("worker_restart_window", parse_duration, "duration", "5m",
            "The window of worker_restart_limit."),
    Setting("max_attempts", _positive_int, "int", "10",
            "Failed attempts before a delivery may become a dead letter (once it is also older than retry_span)."),
    Setting("retry_span", _span, "duration", "24h",
            "How long failures are retried: a delivery becomes a dead letter only when it has failed max_attempts "
            "times and was received longer ago than this, so an outage shorter than this buries nothing."),
    Setting("retry_base", parse_duration, "duration", "2s", "First retry delay; doubles per attempt."),
    Setting("retry_max", parse_duration, "duration", "10m", "Longest retry delay."),
    Setting("log_level", _log_level, "str", "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Setting("console_token", _console_token, "secret", None,
            "Token of the operator console under /console/ (at least 16 characters): the login form takes it, "
            "scripts send 'Authorization: Bearer <token>'. Unset: the console is off (404).", secret=True),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Validated settings. Secrets never appear in repr()."""

    values: Mapping[str, Any] = field(repr=False)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        shown = {s.name: (REDACTED if s.secret and self.values[s.name] else self.values[s.name])
                 for s in SETTINGS}
        return f"Settings({shown})"

    __str__ = __repr__

    def replace(self, **changes: Any) -> Settings:
        unknown = set(changes) - set(_BY_NAME)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, values={**self.values, **changes})

    @property
    def secrets(self) -> list[str]:
        """Every secret value that is set, for log redaction."""
        found: list[str] = []
        for s in SETTINGS:
            value = self.values[s.name]
            if s.secret and value:
                found.extend(value if isinstance(value, tuple) else [value])
        return found


def _read_config_file(path: str) -> dict[str, str]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{CONFIG_FILE_ENV}: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{CONFIG_FILE_ENV}: {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_BY_NAME))
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return {key: (",".join(map(str, v)) if isinstance(v, list) else str(v).lower() if isinstance(v, bool)
                  else str(v)) for key, v in data.items()}


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read, parse and validate every setting; raise SettingsError naming the bad key."""
    env = os.environ if env is None else env
    from_file = _read_config_file(env[CONFIG_FILE_ENV]) if env.get(CONFIG_FILE_ENV) else {}
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = env.get(s.env, from_file.get(s.name, s.default))
        if raw is None or (s.secret and raw == ""):
            values[s.name] = () if s.type_name.startswith("list") else None
            continue
        try:
            values[s.name] = _as_secret(s.parse(raw)) if s.secret else s.parse(raw)
        except ValueError as exc:
            shown = "" if s.secret else f" {raw!r}"
            raise SettingsError(f"{s.env}: invalid value{shown}: {exc}") from None
    settings = Settings(values).replace(**overrides) if overrides else Settings(values)
    _check_secrets(settings)
    return settings


def _as_secret(value: Any) -> Any:
    return tuple(Secret(v) for v in value) if isinstance(value, tuple) else Secret(value)


def _check_secrets(settings: Settings) -> None:
    import base64
    import binascii

    for secret in settings.webhook_secret:
        try:
            if not base64.b64decode(secret.removeprefix("whsec_"), validate=True):
                raise ValueError
        except (binascii.Error, ValueError):
            raise SettingsError(
                f"{ENV_PREFIX}WEBHOOK_SECRET: each secret must be whsec_ followed by non-empty base64"
            ) from None


def require_webhook_auth(settings: Settings) -> None:
    """serve refuses to start when deliveries could not be authenticated and unsigned is not allowed."""
    if not (settings.webhook_secret or settings.webhook_token or settings.allow_unsigned):
        raise SettingsError(
            f"no webhook authentication configured: set {ENV_PREFIX}WEBHOOK_SECRET (Standard Webhooks), "
            f"{ENV_PREFIX}WEBHOOK_TOKEN (bearer token), or {ENV_PREFIX}ALLOW_UNSIGNED=true for a trial"
        )


def reference_table() -> str:
    """The README's configuration reference, generated from SETTINGS (a test keeps them equal)."""
    rows = ["| variable | type | default | secret | what it is |", "| --- | --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = "" if s.default in (None, "") else f"`{s.default}`"
        needed = " Required by the worker." if s.required else ""
        rows.append(f"| `{s.env}` | {s.type_name} | {default} | {'yes' if s.secret else ''} | {s.doc}{needed} |")
    return "\n".join(rows)
