"""Scenario 8: Jira refuses the connector's credentials (401) for a stretch in the middle of a duplicate storm,
then accepts them again. Nothing is buried: every worker pauses (the pause is shown by `nc-connector status`),
no attempt is counted, the pause is probed with backoff, and syncing resumes by itself.

Real processes on PostgreSQL: one `serve --no-worker`, two `nc-connector worker`s, the sandbox as a process;
NC_CONNECTOR_MAX_ATTEMPTS=2 and no retry span, so a 401 counted as an attempt would bury within seconds.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from connector import throttles
from connector.models import Delivery
from tests.reliability.conftest import Cluster, LoadGenerator, check_consistency, nc_stories, phase_shots
from tests.reliability.figures import soak_factor
from tests.sandbox_client import Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

COPIES = 3
UNAUTHORIZED = 30  # 401 answers in the stretch; the probes use some, the rest wait for the backoff


def status_output(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "connector", "status"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def test_credentials_refused_mid_storm_then_back(cluster: Cluster, pg_engine, sandbox: Sandbox) -> None:
    started = time.monotonic()
    cluster.env.update({"NC_CONNECTOR_MAX_ATTEMPTS": "2", "NC_CONNECTOR_RETRY_BASE": "0.5s",
                        "NC_CONNECTOR_RETRY_MAX": "2s"})
    bases = cluster.start_web()
    cluster.start_workers(2)
    ncs = 60 * soak_factor()
    stories, expected = nc_stories(ncs, "NC-2028")
    rand = random.Random("installation-faults")
    load = LoadGenerator(bases, threads=8, deadline=180 * soak_factor())
    distinct = 0
    shots = phase_shots(stories, 0, COPIES, rand)
    distinct += len(shots) // COPIES
    load.send(shots)
    sandbox.faults(faults=[{"kind": "unauthorized", "count": UNAUTHORIZED}])  # the token expires mid-storm
    paused_seen, status_seen = False, ""
    for phase in (1, 2):
        shots = phase_shots(stories, phase, COPIES, rand)
        distinct += len(shots) // COPIES
        load.send(shots)
        for _ in range(100):
            fault = throttles.fault(pg_engine)
            if fault is not None:
                paused_seen = True
                status_seen = status_seen or status_output(cluster.env)
                break
            time.sleep(0.1)
    drained = cluster.drain(pg_engine, timeout=180 * soak_factor())
    served = sandbox.stats()["faultsServed"]["unauthorized"]
    with pg_engine.connect() as conn:
        dead = conn.execute(select(func.count()).where(Delivery.status == "dead")).scalar_one()
        counted = conn.execute(select(func.max(Delivery.attempts))).scalar_one()
    result = check_consistency(pg_engine, sandbox, expected, distinct=distinct, sightings=load.result.acknowledged)
    note = (f"{ncs} NCs, {distinct} distinct x{COPIES}; {served} x 401 served mid-storm; paused seen "
            f"{paused_seen}; dead letters {dead}; most attempts counted {counted}; fault after recovery "
            f"{throttles.fault(pg_engine) is not None}")
    result.report_figures("8 credentials refused", load.result, time.monotonic() - started, note)
    result.assert_consistent(cluster, drained)
    assert served == UNAUTHORIZED and paused_seen
    assert "PAUSED (a fault of the installation" in status_seen and "credentials (401)" in status_seen
    assert dead == 0 and throttles.fault(pg_engine) is None
    assert result.deliveries == {"done": distinct} and result.issues == ncs
