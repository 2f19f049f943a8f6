"""Reading every page of one status of Qualio's event list, when the list may change while it is read.

``GET /v1/events/events`` pages by offset, with no sort, no cursor and no changed-since filter. An event
that is created, deleted, or moves to another status (or up the list) while the pages are read shifts
every later row: a page can then skip a row or repeat one. Two checks catch a shift (pure logic here, the
requests are the caller's ``read_page``):

- **overlapping pages**: each page after the first starts one row early, on the last row of the page
  before. If that row is not where it was, rows moved under us (a row before it left or arrived);
- **the total**: every page carries the status's ``total``; if it differs from the first page's, the set
  changed during the pass.

Either way the pass is read again from offset 0 (rows already handled are skipped by the caller, by code
and ``modified_at``), up to ``max_passes`` times; a status that never settles is reported as unsettled
and the next run reads it again (its changed rows carry a newer ``modified_at``, so none stays missed).
``settle`` then looks again at each status swept earlier in the run: its total, its first row and its last
row (``limit=1`` at offset 0 and at total - 1: two small requests). If any differs from what its last pass
saw, the status is swept again: an event that moved into a status already read, or was created there, shows
as a new total or, when one event left as another arrived, as a new first row (lists ordered newest change
first) or last row (lists in creation order). What still slips through (a change in the middle of a list
whose size, ends and order stay put, after that status was read) is found by the next run: its
``modified_at`` is newer than anything recorded, so it is late by one interval, never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Page", "StatusSweep", "settle", "sweep_status"]

MAX_PASSES = 3


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int


ReadPage = Callable[[str, int, int], Page]  # (status, offset, limit) -> the page
Handle = Callable[[str, list[Any]], None]  # (status, new rows of a page)
Progress = Callable[[str, int, int], None]  # (status, rows read in this pass, total)


@dataclass
class StatusSweep:
    status: str
    total: int = 0
    read: int = 0  # rows read in the last pass
    passes: int = 0
    settled: bool = False
    reasons: list[str] = field(default_factory=list)  # why each pass that was read again was
    first: Any = None  # the first and the last row of the last pass, as (code, modified_at)
    last: Any = None


def sweep_status(read_page: ReadPage, status: str, page_size: int, handle: Handle,
                 progress: Progress | None = None, max_passes: int = MAX_PASSES,
                 sweep: StatusSweep | None = None) -> StatusSweep:
    """Every row of ``status``, page by page, each page's rows handed to ``handle`` as soon as it is read."""
    if page_size < 2:
        raise ValueError("page_size must be at least 2 (pages overlap by one row)")
    sweep = sweep or StatusSweep(status)
    while sweep.passes < max_passes:
        sweep.passes += 1
        reason = _one_pass(read_page, sweep, page_size, handle, progress)
        if reason is None:
            sweep.settled = True
            return sweep
        sweep.settled = False
        sweep.reasons.append(reason)
    return sweep


def settle(read_page: ReadPage, sweeps: Sequence[StatusSweep], page_size: int, handle: Handle,
           progress: Progress | None = None, max_passes: int = MAX_PASSES) -> None:
    """Sweep again each status (but the last one read) whose total, first row or last row moved since."""
    for sweep in sweeps[:-1]:
        while sweep.passes < max_passes:
            moved = _moved(read_page, sweep)
            if moved is None:
                break
            sweep.reasons.append(moved)
            sweep_status(read_page, sweep.status, page_size, handle, progress, max_passes=sweep.passes + 1,
                         sweep=sweep)


def _moved(read_page: ReadPage, sweep: StatusSweep) -> str | None:
    head = read_page(sweep.status, 0, 1)
    total = _total(head)
    if total != sweep.total:
        return f"total moved from {sweep.total} to {total} after the sweep"
    if not sweep.settled:
        return "the last pass did not settle"
    if total and _ident(head.items[0] if head.items else None) != sweep.first:
        return "the first row changed after the sweep"
    if total > 1:
        tail = read_page(sweep.status, total - 1, 1)
        if _ident(tail.items[-1] if tail.items else None) != sweep.last:
            return "the last row changed after the sweep"
    return None


def _one_pass(read_page: ReadPage, sweep: StatusSweep, page_size: int, handle: Handle,
              progress: Progress | None) -> str | None:
    """Read the status once; None when nothing moved, else why the pass must be read again."""
    offset, boundary, first_total = 0, None, None
    sweep.read = 0
    while True:
        page = read_page(sweep.status, offset, page_size)
        total = _total(page)
        if first_total is None:
            first_total = sweep.total = total
        if total != first_total:
            sweep.total = total
            return f"total moved from {first_total} to {total} during the pass"
        rows = page.items
        if boundary is not None:
            if not rows or _code(rows[0]) != boundary:
                return f"rows shifted at offset {offset}"
            rows = rows[1:]
        if offset == 0:
            sweep.first = _ident(page.items[0] if page.items else None)
        sweep.last = _ident(page.items[-1] if page.items else None)
        handle(sweep.status, rows)
        sweep.read += len(rows)
        if progress is not None:
            progress(sweep.status, sweep.read, total)
        # The total, not a short page, ends the pass: Qualio documents no maximum `limit`, so a server that caps
        # it answers short pages that are not the last.
        if not page.items or offset + len(page.items) >= total:
            return None
        if len(page.items) < 2:  # one row is only the overlap: no progress
            return f"a page of {len(page.items)} row at offset {offset}, short of the total {total}"
        offset += len(page.items) - 1  # the next page starts on this page's last row
        boundary = _code(page.items[-1])


def _total(page: Page) -> int:
    return int(page.total)


def _ident(row: Any) -> Any:
    return (row.get("code"), row.get("modified_at")) if isinstance(row, dict) else None


def _code(row: Any) -> Any:
    return row.get("code") if isinstance(row, dict) else None
