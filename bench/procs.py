"""Processes the bench starts: loopback ports, readiness, peak memory, and ending each one by its PID.

Every process is started in a session of its own (its PID is its process-group id) and recorded
in a registry; ``stop`` ends that group (gunicorn's worker children included) by that PID, first
with SIGTERM, then SIGKILL. ``stop_all`` runs at the end of the bench, also after an error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_REGISTRY: list[Proc] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as handle:
            found.extend(int(c) for c in handle.read().split())
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 1000:  # bounded
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def status_kb(pid: int, key: str) -> int | None:
    """A `kB` figure from /proc/<pid>/status (VmHWM: peak resident set, VmRSS: current)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Proc:
    name: str  # e.g. "serve-pg", "worker-1", "sandbox"
    role: str  # "web" (its children are web workers), "sync-worker", "other"
    popen: subprocess.Popen[bytes]
    log_path: Path
    peak_kb: dict[int, tuple[str, int]] = field(default_factory=dict)  # pid -> (kind, VmHWM kB)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def sample_memory(self) -> None:
        """Record VmHWM (a high-water mark) of the process and of its descendants."""
        pids = [(self.pid, "arbiter" if self.role == "web" else self.role)]
        pids += [(c, "web-worker" if self.role == "web" else f"{self.role}-child") for c in descendants(self.pid)]
        for pid, kind in pids:
            hwm = status_kb(pid, "VmHWM")
            if hwm is not None:
                previous = self.peak_kb.get(pid, (kind, 0))[1]
                self.peak_kb[pid] = (kind, max(previous, hwm))

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        self.sample_memory()
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout)
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(name: str, args: Sequence[str], env: dict[str, str], log_dir: Path, role: str = "other",
          cwd: Path | None = None) -> Proc:
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    popen = subprocess.Popen(list(args), env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, cwd=str(cwd) if cwd else None)
    log.close()
    proc = Proc(name, role, popen, log_path)
    _REGISTRY.append(proc)
    return proc


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def wait_ready(proc: Proc, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} (pid {proc.pid}) exited with {proc.popen.returncode} before {url} "
                               f"was ready:\n{proc.tail()}")
        try:
            status, _ = http_get(url, timeout=2)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name}: {url} not ready after {timeout:.0f}s:\n{proc.tail()}")


def stop_all() -> None:
    for proc in reversed(_REGISTRY):
        proc.stop()


def started() -> list[Proc]:
    return list(_REGISTRY)


class MemorySampler:
    """Samples VmHWM of every registered process tree once a second (bounded by the bench's life)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for proc in started():
                if proc.alive():
                    proc.sample_memory()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
