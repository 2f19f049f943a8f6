"""A bounded HTTP/1.1 load generator: P processes x T threads, one keep-alive socket per sender.

Closed loop by default (each sender sends its next request when the last is answered); with a `rate`,
every sender keeps a fixed schedule instead, and a request sent late because its sender was still waiting
counts from when it was due, so a slow answer shows in the latency of the requests behind it.

Requests are built by a picklable *factory* (``factory.build(i) -> bytes``, the whole request)
right before they are sent, so signatures are always fresh (Standard Webhooks allows 5 minutes
of skew) and every body can be distinct. Senders take the next index from one counter shared by
all processes, so a fixed sequence goes out roughly in order. The client is a raw socket with a
minimal response parser (no requests/http.client), so the generator's own CPU per request stays
small on a 2-core machine; its CPU time is measured and reported.

Everything is bounded: a total number of requests and/or a deadline, a socket timeout, and a cap
on connection errors.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import socket
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Protocol

SOCKET_TIMEOUT = 30.0
MAX_ERRORS_PER_SENDER = 200


class RequestFactory(Protocol):
    def build(self, index: int) -> bytes: ...


@dataclass
class LoadResult:
    """Per-request records (parallel arrays) of one run, plus the generator's own CPU time."""

    index: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]
    start: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]  # wall clock (time.time)
    latency: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]  # seconds
    status: array = field(default_factory=lambda: array("i"))  # type: ignore[type-arg]  # 0 = connection error
    bodies: dict[int, bytes] = field(default_factory=dict)  # index -> response body (keep_bodies only)
    cpu_seconds: float = 0.0
    t0: float = 0.0  # when the senders were released (wall clock)
    t_end: float = 0.0

    def merge(self, other: LoadResult) -> None:
        self.index.extend(other.index)
        self.start.extend(other.start)
        self.latency.extend(other.latency)
        self.status.extend(other.status)
        self.bodies.update(other.bodies)
        self.cpu_seconds += other.cpu_seconds

    def __len__(self) -> int:
        return len(self.index)


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=SOCKET_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock, self.buf = None, b""

    def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one whole request, read one response; (status, body). Raises OSError on failure."""
        sock = self.sock or self._connect()
        try:
            sock.sendall(data)
        except OSError:  # the server closed an idle keep-alive connection: one fresh try
            self.close()
            sock = self._connect()
            sock.sendall(data)
        buf = self.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response head")
            buf += chunk
        head = buf[:end]
        rest = buf[end + 4:]
        status = int(head[9:12])
        lower = head.lower()
        pos = lower.find(b"\r\ncontent-length:")
        length = 0
        if pos >= 0:
            stop = lower.find(b"\r\n", pos + 2)
            length = int(lower[pos + 17: stop if stop >= 0 else len(lower)].strip())
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside the response body")
            rest += chunk
        body, self.buf = rest[:length], rest[length:]
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, body


def _sender(host: str, port: int, factory: RequestFactory, counter: Any, total: int | None, deadline: float,
            stop: Any, keep_bodies: bool, out: LoadResult, lock: threading.Lock, pace: Pace | None = None) -> None:
    conn = _Connection(host, port)
    local = LoadResult()
    errors = 0
    sent = 0
    try:
        while time.time() < deadline and not stop.is_set():
            due = pace.due(sent) if pace is not None else None
            wait = 0.0 if due is None else due - time.time()
            if wait > 0:
                time.sleep(wait)
            with counter.get_lock():
                i = counter.value
                counter.value = i + 1
            if total is not None and i >= total:
                break
            data = factory.build(i)
            started = time.time()
            t = time.perf_counter()
            try:
                status, body = conn.request(data)
            except (OSError, ValueError):
                conn.close()
                status, body = 0, b""
                errors += 1
            latency = time.perf_counter() - t
            if due is not None and due < started:  # sent late because the previous answer was late: the
                latency += started - due            # wait counts (no coordinated omission)
                started = due
            local.latency.append(latency)
            local.start.append(started)
            local.index.append(i)
            local.status.append(status)
            sent += 1
            if keep_bodies and status:
                local.bodies[i] = body
            if errors >= MAX_ERRORS_PER_SENDER:
                break
    finally:
        conn.close()
        with lock:
            out.merge(local)


@dataclass(frozen=True)
class Pace:
    """A sender's fixed schedule: sender `slot` of `senders` sends its k-th request at
    t0 + (slot + k * senders) / rate, so all senders together offer `rate` requests/s, evenly spread."""

    t0: float
    rate: float
    slot: int
    senders: int

    def due(self, k: int) -> float:
        return self.t0 + (self.slot + k * self.senders) / self.rate


def _process_main(host: str, port: int, factory: RequestFactory, counter: Any, total: int | None,
                  start_at: float, deadline: float, stop: Any, threads: int, keep_bodies: bool, queue: Any,
                  paces: list[Pace | None]) -> None:
    out = LoadResult()
    lock = threading.Lock()
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    cpu0 = os.times()
    workers = [threading.Thread(target=_sender, daemon=True,
                                args=(host, port, factory, counter, total, deadline, stop, keep_bodies, out, lock,
                                      paces[k]))
               for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(max(1.0, deadline - time.time() + SOCKET_TIMEOUT + 5))
    cpu1 = os.times()
    out.cpu_seconds = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    queue.put(out)


class LoadRun:
    """Start senders in the background (``start``), then ``wait`` for the merged result."""

    def __init__(self, host: str, port: int, factory: RequestFactory, *, senders: int = 16, processes: int = 4,
                 total: int | None = None, duration: float | None = None, keep_bodies: bool = False,
                 counter: Any = None, rate: float | None = None) -> None:
        if total is None and duration is None:
            raise ValueError("a load run needs a total, a duration or both (it must be bounded)")
        self.ctx = mp.get_context("fork")
        self.host, self.port, self.factory = host, port, factory
        self.processes = max(1, min(processes, senders))
        self.senders = senders
        self.total, self.duration = total, duration
        self.keep_bodies = keep_bodies
        self.rate = rate  # requests/s offered by all senders together, on a fixed schedule; None: closed loop
        self.counter = counter if counter is not None else self.ctx.Value("q", 0)
        self.stop_event = self.ctx.Event()
        self.queue = self.ctx.Queue()
        self.procs: list[Any] = []
        self.t0 = 0.0
        self.deadline = 0.0

    def start(self, max_seconds: float = 3600.0) -> LoadRun:
        self.t0 = time.time() + 0.3  # every process starts its senders at the same moment
        self.deadline = self.t0 + (self.duration if self.duration is not None else max_seconds)
        per = [self.senders // self.processes + (1 if k < self.senders % self.processes else 0)
               for k in range(self.processes)]
        first = 0
        for threads in per:
            paces = [None if self.rate is None else Pace(self.t0, self.rate, first + k, self.senders)
                     for k in range(threads)]
            first += threads
            p = self.ctx.Process(target=_process_main, daemon=True,
                                 args=(self.host, self.port, self.factory, self.counter, self.total, self.t0,
                                       self.deadline, self.stop_event, threads, self.keep_bodies, self.queue, paces))
            p.start()
            self.procs.append(p)
        return self

    def stop(self) -> None:
        self.stop_event.set()

    def wait(self) -> LoadResult:
        result = LoadResult(t0=self.t0)
        budget = max(0.0, self.deadline - time.time()) + SOCKET_TIMEOUT + 30
        for _ in self.procs:
            result.merge(self.queue.get(timeout=budget))
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)
        result.t_end = max((s + lat for s, lat in zip(result.start, result.latency, strict=True)), default=self.t0)
        return result


def run_load(host: str, port: int, factory: RequestFactory, **kwargs: Any) -> LoadResult:
    return LoadRun(host, port, factory, **kwargs).start().wait()


# -- figures ---------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an unsorted list; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Window:
    """Throughput and latency of the requests that *finished* inside [start, end)."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    errors: int
    cpu_ms_per_request: float


def window(result: LoadResult, start: float, end: float) -> Window:
    lat: list[float] = []
    statuses: dict[int, int] = {}
    for s, latency, status in zip(result.start, result.latency, result.status, strict=True):
        done = s + latency
        if start <= done < end:
            lat.append(latency)
            statuses[status] = statuses.get(status, 0) + 1
    seconds = max(1e-9, end - start)
    ok = sum(n for st, n in statuses.items() if 200 <= st < 300)
    return Window(requests=len(lat), seconds=seconds, rps=ok / seconds,
                  p50_ms=percentile(lat, 50) * 1000, p99_ms=percentile(lat, 99) * 1000,
                  max_ms=max(lat, default=float("nan")) * 1000, statuses=statuses,
                  errors=statuses.get(0, 0),
                  cpu_ms_per_request=1000 * result.cpu_seconds / max(1, len(result)))
