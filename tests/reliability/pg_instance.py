"""A private PostgreSQL server for fault tests: initdb + pg_ctl from the installed binaries, stopped by PID at the end.

The shared server on 5432 must never be stopped by a test; this one lives in a temporary directory of its own,
on a free loopback port, with its socket in that directory. As root it runs as the `postgres` system user
(initdb refuses root). Without the binaries the test skips locally and fails in CI (CI=true).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.processes import free_port

BIN_ENV = "NC_CONNECTOR_TEST_PG_BIN"  # optional: the directory holding initdb and pg_ctl
RUN_AS = "postgres"  # the system user the server runs as when the tests run as root


def find_bin_dir() -> Path | None:
    """The directory of initdb/pg_ctl: $NC_CONNECTOR_TEST_PG_BIN, the newest /usr/lib/postgresql/N/bin, or PATH."""
    candidates = [os.environ.get(BIN_ENV, "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    which = shutil.which("initdb")
    candidates.append(str(Path(which).parent) if which else "")
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


def unavailable(reason: str) -> None:
    """Skip locally; in CI a missing server is a failure, never a silent skip."""
    if IN_CI:
        pytest.fail(f"private PostgreSQL unavailable: {reason} (CI=true: this test must run)", pytrace=False)
    pytest.skip(f"private PostgreSQL unavailable: {reason}")


class PgInstance:
    """One private cluster: `start()`, `stop(mode)`, `url(database)`, `destroy()` (always safe to call)."""

    def __init__(self, bin_dir: Path) -> None:
        user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(RUN_AS)
            except KeyError:
                unavailable(f"running as root and there is no {RUN_AS!r} user to run initdb as")
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ncc-pg-"))  # short: the socket path must stay < 108 bytes
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.as_user: str | None = None
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = user.pw_name
        self.stops: list[str] = []

    def _run(self, tool: str, args: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / tool), *args]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def init(self) -> None:
        done = self._run("initdb", ["-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                    "--no-locale", "--no-instructions"])
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                   "-c max_connections=100")
        done = self._run("pg_ctl", ["-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", options,
                                    "start"])
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                               + self.log_tail())

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m fast|immediate|smart, waiting until the server is gone."""
        done = self._run("pg_ctl", ["-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"])
        if done.returncode != 0 and self.running():
            raise RuntimeError(f"pg_ctl stop -m {mode} failed ({done.returncode}): {done.stdout}{done.stderr}")
        self.stops.append(mode)

    def postmaster_pid(self) -> int | None:
        with suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def log_tail(self, lines: int = 20) -> str:
        with suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _is_our_postmaster(self, pid: int) -> bool:
        """PID still ours: alive, postmaster.pid still there, and its command line names our data directory."""
        if not (self.data / "postmaster.pid").exists():
            return False
        with suppress(OSError):
            return str(self.data).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        return False

    def destroy(self) -> None:
        """Stop the server (pg_ctl, then SIGKILL by PID if it lingers) and remove its directory."""
        pid = self.postmaster_pid()
        if self.data.exists() and self.running():
            with suppress(Exception):
                self._run("pg_ctl", ["-D", str(self.data), "-m", "immediate", "-w", "-t", "15", "stop"], timeout=20)
        if pid is not None and self._is_our_postmaster(pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the postmaster; its children exit when it is gone
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PgInstance]:
    """A started private cluster; stopped and removed afterwards, also when the test fails."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable(f"no initdb/pg_ctl found (looked in ${BIN_ENV}, /usr/lib/postgresql/*/bin and PATH)")
    assert bin_dir is not None
    instance = PgInstance(bin_dir)
    try:
        instance.init()
        instance.start()
        yield instance
    finally:
        instance.destroy()
