"""Real processes for tests: start on a free loopback port, wait until ready, wait until the workers have
drained the queue, end by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests
from sqlalchemy import Engine, func, select

from connector.models import Delivery

WAITING = ("queued", "processing")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m connector ARGS` in its own process group, output to log_path."""
    log = log_path.open("ab")
    return subprocess.Popen([sys.executable, "-m", "connector", *args], env={**os.environ, **env},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before {url} was ready")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """End the process group we started (gunicorn's workers too), by its PID."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass


@contextmanager
def running(args: Sequence[str], env: dict[str, str], log_path: Path,
            ready_url: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = start(args, env, log_path)
    try:
        if ready_url:
            wait_ready(ready_url, proc)
        yield proc
    finally:
        stop(proc)


def waiting_deliveries(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(Delivery.status.in_(WAITING))).scalar_one())


def drain(engine: Engine, timeout: float = 60, alive: Callable[[], bool] | None = None) -> bool:
    """Wait (bounded) until no delivery is queued or processing; False on timeout or once `alive()` is False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        if waiting_deliveries(engine) == 0:
            return True
        time.sleep(0.2)
    return False


def drained(engine: Engine, timeout: float = 40) -> None:
    """`drain`, raising TimeoutError with what is left on timeout."""
    if not drain(engine, timeout):
        with engine.connect() as conn:
            left = conn.execute(select(Delivery.id, Delivery.nc_id, Delivery.status, Delivery.attempts,
                                       Delivery.last_error).where(Delivery.status.in_(WAITING))).all()
        raise TimeoutError(f"queue not drained after {timeout}s: {left[:10]}")
