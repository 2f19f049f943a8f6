"""manifest.json: the connector's declarative descriptor, and the check that it matches the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connector import __version__
from connector.mapping.rules import SCHEMA_VERSION
from connector.receive.signing import SCHEMES
from connector.receive.webhook import WEBHOOK_PATH
from connector.settings import SETTINGS
from connector.sync.plan import HANDLERS

REQUIRED_KEYS = ("name", "domain", "version", "documentation", "source_system", "source_events",
                 "destination_system", "destination_api_version", "webhook_path", "webhook_auth",
                 "mapping_schema_version", "config")


def manifest_path() -> Path:
    """The wheel's packaged copy, else the repository's top-level manifest.json."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_manifest.json"
    return packaged if packaged.exists() else package.parent / "manifest.json"


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path or manifest_path()).read_text(encoding="utf-8"))
    return data


def check_manifest(manifest: dict[str, Any]) -> list[str]:
    """Every way the manifest disagrees with the code (all of them, not just the first)."""
    errors = [f"missing key {key!r}" for key in REQUIRED_KEYS if key not in manifest]
    if manifest.get("version") != __version__:
        errors.append(f"version {manifest.get('version')!r} != package version {__version__!r}")
    events = set(manifest.get("source_events", []))
    errors += [f"event type {e!r} is handled but not listed" for e in sorted(set(HANDLERS) - events)]
    errors += [f"event type {e!r} is listed but not handled" for e in sorted(events - set(HANDLERS))]
    if manifest.get("webhook_path") != WEBHOOK_PATH:
        errors.append(f"webhook_path {manifest.get('webhook_path')!r} != {WEBHOOK_PATH!r}")
    if sorted(manifest.get("webhook_auth", [])) != sorted(SCHEMES):
        errors.append(f"webhook_auth {manifest.get('webhook_auth')!r} != {list(SCHEMES)!r}")
    if manifest.get("mapping_schema_version") != SCHEMA_VERSION:
        errors.append(f"mapping_schema_version {manifest.get('mapping_schema_version')!r} != {SCHEMA_VERSION}")
    errors += _config_errors(manifest.get("config", []))
    return errors


def _config_errors(config: list[dict[str, Any]]) -> list[str]:
    declared = {s.env: s for s in SETTINGS}
    listed = {entry.get("env"): entry for entry in config}
    errors = [f"setting {env} is missing" for env in declared if env not in listed]
    errors += [f"setting {env} is listed but does not exist" for env in listed if env not in declared]
    for env, entry in listed.items():
        setting = declared.get(str(env))
        if setting is None:
            continue
        expected = {"type": setting.type_name, "default": setting.default, "required": setting.required,
                    "secret": setting.secret}
        errors += [f"setting {env}: {key} {entry.get(key)!r} != {value!r}"
                   for key, value in expected.items() if entry.get(key) != value]
        if entry.get("secret") and entry.get("default") is not None:
            errors.append(f"setting {env} is a secret with a default")
    return errors
