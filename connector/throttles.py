"""The shared pauses (`throttles` table): "no call to `name` before T", seen by every worker of every instance.

Jira's Retry-After (`jira`) and careful mode (`jira-careful`) live here; a pause is only ever lengthened.
So does a fault of the whole installation (`installation`: Jira's credentials or permissions refused,
Qualio's key refused): every worker waits, and the first sync after the pause is the probe; each failed
probe doubles the wait, and the first sync that succeeds clears it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, literal, select, update

from connector import db
from connector.clock import utcnow
from connector.models import Throttle


def pause(engine: Engine, name: str, seconds: float) -> None:
    """Every worker waits until now + seconds before calling `name` again (Jira's Retry-After)."""
    pause_all(engine, {name: seconds})


def pause_all(engine: Engine, pauses: Mapping[str, float]) -> None:
    """`pause` for each name, in one transaction. A pause is only ever lengthened, never shortened."""
    with engine.begin() as conn:
        now = db.now(conn)
        for name, seconds in pauses.items():
            not_before = now + timedelta(seconds=seconds)
            db.insert_ignore(conn, Throttle, name=name, not_before=not_before)
            conn.execute(update(Throttle).where(Throttle.name == name, Throttle.not_before < not_before)
                         .values(not_before=not_before))


def paused_for(bind: Engine | Connection, name: str) -> float:
    """Seconds until `name` may be called again (0 when it may be called now)."""
    return throttled(bind, name)[name]


def throttled(bind: Engine | Connection, *names: str) -> dict[str, float]:
    """Seconds left on each named pause (0 for none), read in one query (on `bind` if a connection), against
    the database's clock: on PostgreSQL it is read in the same query."""
    clock = func.now() if bind.dialect.name == "postgresql" else literal(None)
    query = select(Throttle.name, Throttle.not_before, clock).where(Throttle.name.in_(names))
    if isinstance(bind, Connection):
        rows = bind.execute(query).all()
    else:
        with db.reader(bind).connect() as conn:
            rows = conn.execute(query).all()
    found = {name: max(0.0, (not_before - (now or utcnow())).total_seconds()) for name, not_before, now in rows}
    return {name: found.get(name, 0.0) for name in names}


INSTALLATION = "installation"


@dataclass(frozen=True)
class Fault:
    reason: str
    until: datetime
    strikes: int  # failed probes in a row (1 after the first failure)


def record_fault(engine: Engine, reason: str, base: float, cap: float) -> float:
    """Pause every worker for a fault of the installation; the wait doubles per strike up to `cap`. Returns it."""
    with engine.begin() as conn:
        now = db.now(conn)
        db.insert_ignore(conn, Throttle, name=INSTALLATION, not_before=now, strikes=0)
        strikes = conn.execute(update(Throttle).where(Throttle.name == INSTALLATION)
                               .values(strikes=Throttle.strikes + 1).returning(Throttle.strikes)).scalar_one()
        wait = float(min(cap, base * 2 ** (strikes - 1)))
        conn.execute(update(Throttle).where(Throttle.name == INSTALLATION)
                     .values(not_before=now + timedelta(seconds=wait), reason=reason[:2000]))
    return wait


def fault(bind: Engine | Connection) -> Fault | None:
    """The installation's fault, if one is recorded (its pause may be over: the next sync probes)."""
    query = select(Throttle.reason, Throttle.not_before, Throttle.strikes).where(Throttle.name == INSTALLATION)
    if isinstance(bind, Connection):
        row = bind.execute(query).first()
    else:
        with db.reader(bind).connect() as conn:
            row = conn.execute(query).first()
    return Fault(row.reason or "", row.not_before, row.strikes) if row else None


def clear_fault(engine: Engine) -> bool:
    """A sync went through: the installation works again. True if a fault was cleared."""
    with engine.begin() as conn:
        return bool(conn.execute(delete(Throttle).where(Throttle.name == INSTALLATION)).rowcount)
