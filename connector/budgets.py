"""Request budgets shared by every process of the installation (`budgets` table), on the database's clock.

Qualio allows 200 requests a minute per API key, and one key serves every worker's enrichment and the
reconcile: a limiter per process would let N processes send N times the budget. ``SharedBudget`` keeps
one budget in one row that every process updates.

The rule is GCRA (the "generic cell rate algorithm", a leaky bucket kept as one timestamp): each request
adds ``interval`` seconds of debt to ``free_at`` (the moment the budget is whole again); a request is
granted while the debt ahead of it is at most ``burst - 1`` intervals. With ``burst = max(1, limit // 20)``
and ``interval = 61 / (limit - burst + 1)``, no 61-second window, sliding or fixed, ever holds more than
``limit`` requests (at most ``ceil(61 / interval) + burst - 1``), the steady rate is about 188 a minute (of
200), and a short burst of ``burst`` requests goes out at once. The extra second is margin: grants are
counted on the database's clock, and the time from grant to Qualio differs by process, so a budget exact
at grant time could show Qualio 201 requests in its minute. A fixed per-minute
counter would let ``2 * limit`` through around the turn of a minute, which a sliding-window server refuses.

A 429 pauses the budget for everyone through the `throttles` row of the same name, only ever lengthened
(`connector.throttles.pause`): while it lasts, ``acquire`` grants nothing and returns the pause left.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, select, update

from connector import db, throttles
from connector.models import Budget

__all__ = ["Rate", "SharedBudget", "decide", "rate_for"]

WINDOW_SECONDS = 61.0  # Qualio's minute plus a second of margin (see the module docstring)


@dataclass(frozen=True)
class Rate:
    """``interval`` of debt per request; at most ``burst`` requests at once. Whole microseconds (timedelta's
    resolution), rounded up: a rounded-down interval would let a request more through now and then."""

    interval: timedelta
    burst: int

    @property
    def tolerance(self) -> timedelta:
        return (self.burst - 1) * self.interval

    @property
    def interval_seconds(self) -> float:
        return self.interval.total_seconds()


def rate_for(limit: int, window: float = WINDOW_SECONDS) -> Rate:
    """The rate under which no ``window`` ever holds more than ``limit`` requests (see the module docstring)."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    burst = max(1, limit // 20)
    micros = math.ceil(window * 1_000_000 / (limit - burst + 1))
    return Rate(interval=timedelta(microseconds=micros), burst=burst)


def decide(free_at: datetime, now: datetime, rate: Rate) -> tuple[datetime | None, float]:
    """Pure GCRA step: (the new ``free_at``, 0) when a request at ``now`` is granted, else (None, seconds to wait)."""
    ahead = free_at - now
    if ahead <= rate.tolerance:
        return max(free_at, now) + rate.interval, 0.0
    return None, (ahead - rate.tolerance).total_seconds()


class SharedBudget:
    """``limit`` requests per minute for ``name``, across every process on the database.

    Same interface as ``connector.qualio.client.RateLimiter``: ``acquire`` waits (sleeping, outside any
    transaction) for a slot and returns 0.0, or returns the pause left (> 0) without a slot while a 429's
    pause holds; ``pause(seconds)`` records one for everybody; ``paused_for`` reads it. ``granted`` counts
    this process's grants (for the figures).
    """

    def __init__(self, engine: Engine, name: str, limit: int, *,
                 sleep: Callable[[float], None] = time.sleep, max_sleep: float = 1.0) -> None:
        self.engine = engine
        self.name = name
        self.rate = rate_for(limit)
        self._sleep = sleep
        self._max_sleep = max_sleep  # re-read the row at least this often: a pause may have begun meanwhile
        self._row_ready = False
        self.granted = 0

    def acquire(self) -> float:
        while True:
            paused, wait = self._try()
            if paused > 0:
                return paused
            if wait <= 0:
                self.granted += 1
                return 0.0
            self._sleep(min(wait, self._max_sleep))

    def pause(self, seconds: float) -> float:
        throttles.pause(self.engine, self.name, seconds)
        return self.paused_for()

    def paused_for(self) -> float:
        return throttles.paused_for(self.engine, self.name)

    def _try(self) -> tuple[float, float]:
        """(pause left, 0) while paused; else (0, 0) with a slot taken, or (0, seconds until one frees)."""
        self._ensure_row()
        with self.engine.begin() as conn:
            paused = throttles.paused_for(conn, self.name)
            if paused > 0:
                return paused, 0.0
            return 0.0, self._take(conn)

    def _take(self, conn: Connection) -> float:
        # FOR UPDATE on PostgreSQL; SQLite's transactions already hold the write lock (BEGIN IMMEDIATE).
        free_at = conn.execute(select(Budget.free_at).where(Budget.name == self.name)
                               .with_for_update()).scalar_one()
        now = db.now(conn)
        new_free_at, wait = decide(free_at, now, self.rate)
        if new_free_at is None:
            return max(wait, 0.001)
        conn.execute(update(Budget).where(Budget.name == self.name)
                     .values(free_at=new_free_at, used=Budget.used + 1))
        return 0.0

    def _ensure_row(self) -> None:
        if self._row_ready:
            return
        with self.engine.begin() as conn:
            db.insert_ignore(conn, Budget, name=self.name, free_at=db.now(conn), used=0)
        self._row_ready = True
