"""Recent deliveries this process stored: a copy of one, arriving seconds later, is answered without the database.

Delivery is at-least-once: the same change arrives 2-3 times within seconds, often at the process that stored
the first (on PostgreSQL `serve` runs one web process). The database would only read such a copy's row and
count the sighting: store.py writes nothing for a row whose stored `last_seen_at` is younger than
COALESCE_SECONDS, and sightings.py writes the count. So each process remembers the rows it inserted in the last
COALESCE_SECONDS, and a copy of one is answered from that, its sighting counted as store.py would count it.

Only where the database's answer would be the same, so the fingerprint log stays the one judge:
- the same fingerprint, with no webhook-id or the row's own: webhook_id is unique, so no other row holds it.
  A copy with a new webhook-id goes to the database, which may know that id as another row's;
- the row inserted less than COALESCE_SECONDS ago, by this process's clock, as the database's rule reads it.
  Prune keeps a row its retention plus COALESCE_SECONDS after its last sighting, and nothing else deletes
  fingerprints, so the row is still there;
- not a thin event with enrichment on: its copies may re-queue the NC, which store.py decides.
Remembered only after the commit that inserted the row. Bounded: the newest CAPACITY rows.
"""

from __future__ import annotations

import os
import threading
import weakref
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine

from connector.receive.sightings import COALESCE_SECONDS, sighting_log

# Copies come within seconds: this holds about 4 s of new deliveries at the highest rate measured (bench/README.md),
# at about 300 bytes each.
CAPACITY = 20_000
_FRESH = timedelta(seconds=COALESCE_SECONDS)


class _Row(NamedTuple):
    row_id: int
    webhook_id: str | None
    first_seen_at: datetime


class RecentDeliveries:
    """remember() what this process inserted; find() the row a copy duplicates, when the database need not look."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()  # for remember's eviction; a look-up is one dict read
        self._rows: dict[str, _Row] = {}  # fingerprint -> its row, oldest first (insertion order)

    def remember(self, values: dict[str, Any], row_id: int) -> None:
        """A new delivery's fingerprint row, committed (values as store.delivery_values made them)."""
        with self._lock:
            self._rows[values["fingerprint"]] = _Row(row_id, values["webhook_id"], values["now"])
            while len(self._rows) > self._capacity:
                del self._rows[next(iter(self._rows))]

    def find(self, values: dict[str, Any]) -> _Row | None:
        """The row this delivery copies, if the database's answer is known (see the module); else None."""
        if values["requeue"]:
            return None
        row = self._rows.get(values["fingerprint"])
        if row is None or values["webhook_id"] not in (None, row.webhook_id):
            return None
        if row.first_seen_at < values["now"] - _FRESH:  # its stored last_seen_at is stale: store.py moves it
            return None
        return row

    def __len__(self) -> int:
        return len(self._rows)


_RECENT: weakref.WeakKeyDictionary[Engine, RecentDeliveries] = weakref.WeakKeyDictionary()
_RECENT_LOCK = threading.Lock()


def recent_deliveries(engine: Engine) -> RecentDeliveries:
    """This process's recent deliveries for the engine's database."""
    with _RECENT_LOCK:
        found = _RECENT.get(engine)
        if found is None:
            found = _RECENT[engine] = RecentDeliveries()
        return found


def copy_seen_at(engine: Engine, values: dict[str, Any]) -> datetime | None:
    """The first sighting of the recent row this delivery copies, its sighting counted; None: ask the database."""
    recent = _RECENT.get(engine)
    row = None if recent is None else recent.find(values)
    if row is None:
        return None
    sighting_log(engine).note([row.row_id])
    return row.first_seen_at


def _forget_after_fork() -> None:
    """A forked child starts empty, with a lock no thread of the parent can be holding."""
    global _RECENT_LOCK
    _RECENT_LOCK = threading.Lock()
    _RECENT.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
