"""One Qualio budget for the installation, with real processes: two `nc-connector worker`s enriching and an
`nc-connector reconcile` sweeping, on one PostgreSQL, against the Qualio stand-in (which counts every request
and answers 429 beyond the budget) and the Jira sandbox."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from connector import db
from connector.budgets import rate_for
from connector.sandbox.qualio import QualioState, start_in_thread
from tests.conftest import truncate
from tests.processes import drained, running
from tests.qualio.reconcile_support import KEY, soon
from tests.sandbox_client import Sandbox, connector_env, running_sandbox
from tests.sync.helpers import deliver

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LIMIT = 300  # a minute: burst 15, one request per 0.21 s after it


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[object]:
    engine = db.make_engine(pg_url)
    truncate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path / "sandbox.log") as client:
        yield client


def windows(times: list[float], width: float) -> int:
    """The most requests in any window [t, t + width)."""
    ordered, best, start = sorted(times), 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_two_workers_and_a_reconcile_share_one_budget(pg_url, pg_engine, sandbox, tmp_path):
    state = QualioState(KEY, limit_per_minute=LIMIT)
    for n in range(30):
        state.add_event("NCR", "open", f"NC {n + 1}", at=soon(30))
    with start_in_thread(state) as qualio:
        env = connector_env(pg_url, sandbox, NC_CONNECTOR_QUALIO_API_KEY=KEY, NC_CONNECTOR_QUALIO_URL=qualio.url,
                            NC_CONNECTOR_QUALIO_MAX_PER_MINUTE=str(LIMIT), NC_CONNECTOR_QUALIO_PAGE_SIZE="3",
                            NC_CONNECTOR_RECONCILE_INTERVAL="0")
        for n in range(15):  # webhooks for half of them: the workers enrich these
            deliver(pg_engine, {"eventType": "nc.created", "ncId": f"NCR-{n + 1}",
                                "timestamp": state.events[f"NCR-{n + 1}"]["modified_at"]})
        with running(["worker"], env, tmp_path / "w1.log"), running(["worker"], env, tmp_path / "w2.log"):
            # ...while reconcile sweeps (page size 3: 15 pages of open) and queues the other 15 (missed creates)
            done = subprocess.run([sys.executable, "-m", "connector", "reconcile"], env={**_environ(), **env},
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert "new 15" in done.stdout, done.stdout
            drained(pg_engine, timeout=60)
        stats = requests.get(f"{qualio.url}/_qualio/stats", timeout=5).json()
    times = sorted(stats["times"])
    rate = rate_for(LIMIT)
    assert stats["byKind"]["detail"] >= 30 and stats["byKind"]["list"] >= 15
    assert stats["throttled"] == 0  # the stand-in's own 300-a-minute window never overflowed
    # Shaped together: in any 3 s, at most the burst plus one request per interval, across all three processes
    # (three per-process limiters would each send that much).
    assert windows(times, 3.0) <= rate.burst + math.ceil(3.0 / rate.interval_seconds) + 1
    span = times[-1] - times[0]
    assert span >= (len(times) - rate.burst - 1) * rate.interval_seconds * 0.98
    print(f"\nshared budget: {len(times)} Qualio requests in {span:.1f} s from 2 workers + reconcile "
          f"(budget {LIMIT}/min = burst {rate.burst} + 1 per {rate.interval_seconds:.3f} s); "
          f"most in any 3 s: {windows(times, 3.0)}; 429s {stats['throttled']}")
    issues = sandbox.issues()
    assert len(issues) == 30


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)
