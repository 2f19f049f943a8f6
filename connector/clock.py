"""The one clock of the application side: aware UTC datetimes (tests may monkeypatch `utcnow`)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
