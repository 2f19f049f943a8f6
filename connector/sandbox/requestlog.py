"""The request log: every /rest/ request the sandbox saw (arrival, answer, fault, Retry-After sent), and
the requests that came back before a Retry-After had elapsed."""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.sandbox.errors import JsonDict

Clock = Callable[[], float]

LOG_LIMIT = 10_000


@dataclass
class RequestRecord:
    """One request as the sandbox saw it; `time` is its arrival, `answered` when the answer was ready."""

    seq: int
    method: str
    path: str
    query: str
    time: float
    body: Any = None
    status: int | None = None
    answered: float | None = None
    fault: str | None = None
    retry_after: int | None = None
    delivered: bool = True

    def to_json(self) -> JsonDict:
        return {"seq": self.seq, "method": self.method, "path": self.path, "query": self.query,
                "time": self.time, "answered": self.answered, "status": self.status, "fault": self.fault,
                "retryAfter": self.retry_after, "delivered": self.delivered, "body": self.body}


class RequestLog:
    """The last `LOG_LIMIT` requests in arrival order, numbered from 1 since the last reset."""

    def __init__(self, clock: Clock, lock: threading.RLock) -> None:
        self.clock = clock
        self.lock = lock
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self._log: deque[RequestRecord] = deque(maxlen=LOG_LIMIT)
            self.seq = 0

    def arrive(self, method: str, path: str, query: str, now: float, body: Any) -> RequestRecord:
        """Log a request's arrival; the live record is completed by `answered()`."""
        with self.lock:
            self.seq += 1
            record = RequestRecord(self.seq, method, path, query, now, body)
            self._log.append(record)
            return record

    def answered(self, record: RequestRecord, status: int | None, *, delivered: bool = True,
                 retry_after: int | None = None) -> None:
        with self.lock:
            record.status, record.delivered, record.retry_after = status, delivered, retry_after
            record.answered = self.clock()

    def requests(self) -> list[RequestRecord]:
        with self.lock:
            return [dataclasses.replace(record) for record in self._log]

    def retry_after_violations(self, *, same_path: bool = False, grace: float = 0.0) -> list[JsonDict]:
        """Requests that arrived after a Retry-After answer was sent but before it had elapsed.

        Global by default (Jira's limits are per tenant); `same_path` only counts repeats of the limited
        method and path. `grace`: requests arriving within that many seconds of the answer count as
        already in flight (another client of the same tenant could not have known yet).
        """
        records = self.requests()
        found = []
        for index, limited in enumerate(records):
            if limited.retry_after is None or limited.answered is None:
                continue
            not_before = limited.answered + limited.retry_after
            for later in records[index + 1:]:
                if later.time >= not_before:
                    break  # the log is in arrival order
                same = (later.method, later.path) == (limited.method, limited.path)
                if later.time >= limited.answered + grace and (same or not same_path):
                    found.append({"limited": limited.seq, "request": later.seq, "arrived": later.time,
                                  "notBefore": not_before, "early": not_before - later.time})
        return found
