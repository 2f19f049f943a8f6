"""Group commit: the deliveries that threads of one process store at the same moment share one
transaction - one write lock taken, one fsync - and each thread still returns only after the
commit that holds its own delivery.

SQLite has a single writer. Without this, each of a process's threads takes the write lock in
turn, and a thread that finds it taken sleeps in SQLite's busy handler (1, 2, 5, 10 ... ms)
however soon the lock is free again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Job(Generic[Item, Result]):
    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = False
        self.result: Result | None = None
        self.error: BaseException | None = None

    def outcome(self) -> Result:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit(Generic[Item, Result]):
    """Calls `write_batch` with every item submitted while the previous batch was being written.

    write_batch gets the items in submission order and returns one result per item; if it raises,
    every caller of that batch gets the exception (nothing of the batch was committed).
    """

    def __init__(self, write_batch: Callable[[Sequence[Item]], Sequence[Result]]) -> None:
        self._write_batch = write_batch
        self._writer = threading.Lock()  # held by the thread writing a batch
        self._waiting_lock = threading.Lock()
        self._waiting: list[_Job[Item, Result]] = []

    def submit(self, item: Item) -> Result:
        job: _Job[Item, Result] = _Job(item)
        with self._waiting_lock:
            self._waiting.append(job)
        with self._writer:
            # Whoever held the writer lock before us may have taken our job into its batch.
            if not job.done:
                with self._waiting_lock:
                    batch, self._waiting = self._waiting, []
                self._write(batch)
        return job.outcome()

    def _write(self, batch: list[_Job[Item, Result]]) -> None:
        try:
            done = list(zip(batch, self._write_batch([job.item for job in batch]), strict=True))
        except BaseException as exc:  # every caller of the batch gets it, each in its own thread
            for job in batch:
                job.error, job.done = exc, True
            return
        for job, result in done:
            job.result, job.done = result, True
