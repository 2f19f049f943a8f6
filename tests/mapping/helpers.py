"""Shared by the mapping tests: the shipped files, sample records, a fake Jira resolver, file helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.jira.field_shapes import FieldInfo
from connector.mapping.load import load_mapping
from connector.mapping.rules import Mapping, MappingError
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "mappings" / "default.toml"
RICH = ROOT / "mappings" / "example-rich.toml"
THIN = {"ncId": "NC-2025-001", "eventType": "nc.updated", "timestamp": "2025-01-05T10:15:32Z"}
COMMENT = {"id": "c-1001", "author": "dana@example.com", "createdAt": "2025-01-05T10:15:32Z",
           "body": "Root cause: firmware 2.3 on printer P-4."}
MINIMAL = 'schema_version = 1\n[fields.summary]\ntemplate = "{{ nc.title }}"\n'


class FakeResolver:
    """Jira's field list and user directory, as the sync engine's Jira-backed resolver would answer."""

    FIELDS = (
        FieldInfo("customfield_10010", "Severity", "option"),
        FieldInfo("customfield_10011", "Risk score", "number"),
        FieldInfo("customfield_10012", "Reported at", "datetime"),
        FieldInfo("customfield_10013", "QA approver", "user"),
    )

    def __init__(self) -> None:
        self.asked: list[str] = []

    def field(self, name_or_id: str) -> FieldInfo | None:
        self.asked.append(name_or_id)
        return next((f for f in self.FIELDS if name_or_id in (f.id, f.name)), None)

    def user(self, ref: str) -> dict[str, str] | None:
        """Jira Cloud's answer: an e-mail of the directory, or any id as it is."""
        if "@" not in ref:
            return {"accountId": ref}
        account = {"dana@example.com": "acc-dana", "lee@example.com": "acc-lee"}.get(ref)
        return {"accountId": account} if account else None


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def write(tmp_path: Path, text: str, name: str = "mapping.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Mapping:
    return load_mapping(write(tmp_path, text), project_override="QA")


def problems_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert all(line.startswith(f"{path}: ") for line in message.splitlines()), message
    return message
