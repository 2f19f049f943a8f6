"""The Jira sandbox (`nc-connector sandbox`) as a real process, its control API, and the env that points
the connector's processes at it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.conftest import TEST_SECRET
from tests.processes import free_port, running

MARKER_PREFIX = "qualio-nc-"  # the label that marks an NC's issue in Jira (default mapping): qualio-nc-<NC id>
JIRA_WRITE_STATS = ("creates", "updates", "transitions", "comments", "remoteLinksCreated", "remoteLinksUpdated",
                    "remoteLinksDeleted", "deletes")


def jira_writes(stats: dict[str, Any]) -> int:
    """The writes Jira applied, from the sandbox's stats."""
    return sum(int(stats.get(name, 0)) for name in JIRA_WRITE_STATS)


class Sandbox:
    """The sandbox's control API (never faulted, never logged); one requests.Session per thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    def _http(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def faults(self, **spec: Any) -> dict[str, Any]:
        answer = self._http().post(f"{self.url}/_sandbox/faults", json=spec, timeout=10)
        answer.raise_for_status()
        return dict(answer.json())

    def clear_faults(self) -> None:
        self.faults(clear=True)

    def issues(self) -> list[dict[str, Any]]:
        return list(self._http().get(f"{self.url}/_sandbox/issues", timeout=30).json()["issues"])

    def stats(self) -> dict[str, Any]:
        return dict(self._http().get(f"{self.url}/_sandbox/stats", timeout=30).json())

    def requests_log(self, **query: Any) -> dict[str, Any]:
        params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in query.items()}
        return dict(self._http().get(f"{self.url}/_sandbox/requests", params=params, timeout=30).json())

    def last_seq(self) -> int:
        return int(self.stats()["requests"])


@contextmanager
def running_sandbox(log_path: Path) -> Iterator[Sandbox]:
    """`nc-connector sandbox` on a free port until the block ends (then ended by its PID)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(["sandbox", "--port", str(port), "--quiet"], {}, log_path, ready_url=f"{url}/_sandbox/health"):
        yield Sandbox(url)


def connector_env(db_url: str, sandbox: Sandbox, **extra: str) -> dict[str, str]:
    """The env of a connector process on `db_url` with the sandbox as its Jira; `extra` adds or overrides."""
    return {"NC_CONNECTOR_DATABASE_URL": db_url, "NC_CONNECTOR_WEBHOOK_SECRET": TEST_SECRET,
            "NC_CONNECTOR_JIRA_URL": sandbox.url, "NC_CONNECTOR_JIRA_PAT": "sandbox-pat",
            "NC_CONNECTOR_JIRA_PROJECT": "QA", "NC_CONNECTOR_WORKER_POLL_INTERVAL": "0.1s",
            "NC_CONNECTOR_RETRY_BASE": "0.5s", "NC_CONNECTOR_RETRY_MAX": "2s", "NC_CONNECTOR_JIRA_TIMEOUT": "2",
            "NC_CONNECTOR_RETRY_SPAN": "0s",
            **extra}
