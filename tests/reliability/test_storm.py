"""Scenarios 1 and 7: a duplicate storm across processes on PostgreSQL.

Every delivery is sent three times at once (a sender's retry with the same webhook-id and a
relay's re-serialised, re-signed copy) from many client threads, mixed with same-second distinct
updates and comments. Afterwards: one Jira issue per NC, every distinct update and comment applied
exactly once, and the fingerprint log and the mapping table agree with what was sent.

Scenario 1 runs one `serve --no-worker --workers 2` (two web processes under one gunicorn);
scenario 7 runs two separately started `serve --no-worker` instances on two ports, one database,
with the clients alternating between them (the README's scale-out story). Both add two
`nc-connector worker` processes.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.reliability.conftest import Cluster, LoadGenerator, check_consistency, nc_stories, phase_shots
from tests.reliability.figures import soak_factor
from tests.sandbox_client import Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

COPIES = 3
CLIENT_THREADS = 12


def run_storm(scenario: str, cluster: Cluster, pg_engine, sandbox: Sandbox, ncs: int, instances: int,
              processes: int, prefix: str) -> None:
    started = time.monotonic()
    bases = cluster.start_web(instances=instances, processes=processes)
    cluster.start_workers(2)
    stories, expected = nc_stories(ncs, prefix)
    rand = random.Random(f"{scenario}-{ncs}")
    load = LoadGenerator(bases, threads=CLIENT_THREADS, deadline=240 * soak_factor())
    distinct = 0
    for phase in range(3):  # a phase is sent once the one before is acknowledged; workers sync throughout
        shots = phase_shots(stories, phase, COPIES, rand, targets=len(bases))
        distinct += len(shots) // COPIES
        load.send(shots)
    sent_seconds = load.result.seconds
    drained = cluster.drain(pg_engine, timeout=120 * soak_factor())
    result = check_consistency(pg_engine, sandbox, expected, distinct=distinct, sightings=load.result.acknowledged)
    elapsed = time.monotonic() - started
    note = (f"{ncs} NCs, {distinct} distinct x{COPIES} from {CLIENT_THREADS} threads to {len(bases)} instance(s) "
            f"x {processes} process(es), 2 workers; sent in {sent_seconds:.1f}s; fingerprints {result.fingerprints}, "
            f"times_seen {result.times_seen}, linked {result.linked}, comment_links {result.comment_links}")
    result.report_figures(scenario, load.result, elapsed, note)
    result.assert_consistent(cluster, drained)
    # Every copy was answered; exactly the distinct ones were accepted, the rest were duplicates.
    assert load.result.unanswered == 0 and load.result.errors == 0, load.result
    assert load.result.accepted == distinct and load.result.duplicates == distinct * (COPIES - 1), load.result.answers
    assert result.issues == ncs and result.deliveries == {"done": distinct}
    assert result.stats["creates"] == ncs


def test_duplicate_storm_across_processes(cluster, pg_engine, sandbox):
    """Scenario 1: 2 web processes (one gunicorn), 2 workers, >= 300 NCs, every delivery 3 times at once."""
    run_storm("1 duplicate storm", cluster, pg_engine, sandbox, ncs=300 * soak_factor(), instances=1, processes=2,
              prefix="NC-2026")


def test_several_instances_one_database(cluster, pg_engine, sandbox):
    """Scenario 7: two separately started `serve --no-worker` instances on one database, clients alternating."""
    run_storm("7 instances, one database", cluster, pg_engine, sandbox, ncs=300 * soak_factor(), instances=2,
              processes=1, prefix="NC-2027")
