"""The shared pauses (`throttles` table): "no call to `name` before T", seen by every worker of every instance.

Jira's Retry-After (`jira`) and careful mode (`jira-careful`) live here; a pause is only ever lengthened.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.clock import utcnow
from connector.models import Throttle


def pause(engine: Engine, name: str, seconds: float) -> None:
    """Every worker waits until now + seconds before calling `name` again (Jira's Retry-After)."""
    pause_all(engine, {name: seconds})


def pause_all(engine: Engine, pauses: Mapping[str, float]) -> None:
    """`pause` for each name, in one transaction. A pause is only ever lengthened, never shortened."""
    now = utcnow()
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for name, seconds in pauses.items():
            not_before = now + timedelta(seconds=seconds)
            conn.execute(dialect.insert(Throttle).values(name=name, not_before=not_before).on_conflict_do_nothing())
            conn.execute(update(Throttle).where(Throttle.name == name, Throttle.not_before < not_before)
                         .values(not_before=not_before))


def paused_for(bind: Engine | Connection, name: str) -> float:
    """Seconds until `name` may be called again (0 when it may be called now)."""
    return throttled(bind, name)[name]


def throttled(bind: Engine | Connection, *names: str) -> dict[str, float]:
    """Seconds left on each named pause (0 for none), read in one query (on `bind` if a connection)."""
    query = select(Throttle.name, Throttle.not_before).where(Throttle.name.in_(names))
    if isinstance(bind, Connection):
        rows = bind.execute(query).all()
    else:
        with bind.connect() as conn:
            rows = conn.execute(query).all()
    now = utcnow()
    found = {name: max(0.0, (not_before - now).total_seconds()) for name, not_before in rows}
    return {name: found.get(name, 0.0) for name in names}
