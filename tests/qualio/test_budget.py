"""The installation's Qualio budget (connector.budgets): the GCRA rule (pure), shared through the database by
several budgets at once, and a 429's pause seen by all of them."""

from __future__ import annotations

import math
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from connector import db
from connector.budgets import WINDOW_SECONDS, SharedBudget, decide, rate_for
from connector.sandbox.qualio import peak_per_minute


@pytest.mark.parametrize("limit", [1, 2, 7, 60, 199, 200, 1000])
@pytest.mark.parametrize("greedy", [True, False])
def test_no_window_of_a_minute_ever_holds_more_than_the_limit(limit: int, greedy: bool) -> None:
    """A caller asking again the moment it may (greedy) or at random moments is granted at most ``limit`` in any
    60 s; the greedy one gets the steady rate, limit - burst + 1 per 61 s (a second of margin), over ten minutes."""
    rate, rng = rate_for(limit), random.Random(limit)
    start = now = datetime(2026, 1, 1, tzinfo=UTC)
    free_at, granted = start, []
    while (now - start).total_seconds() < 600:
        new_free_at, wait = decide(free_at, now, rate)
        if new_free_at is not None:
            free_at = new_free_at
            granted.append((now - start).total_seconds())
        elif greedy:
            now += timedelta(seconds=wait)
        if not greedy:
            now += timedelta(seconds=rng.random() * rate.interval_seconds)
    assert peak_per_minute(granted) <= limit
    if greedy:
        assert len(granted) >= (limit - rate.burst + 1) * 600 / WINDOW_SECONDS


def test_the_default_budget_is_188_a_minute_with_bursts_of_10() -> None:
    rate = rate_for(200)
    assert rate.burst == 10 and math.isclose(rate.interval_seconds, 61 / 191, rel_tol=1e-5)


def test_budgets_on_one_database_share_it(db_url: str) -> None:
    """Three budgets (three engines, as three processes would have) asking as fast as they can for 2 s get what
    one would: the burst plus one grant per interval, not three times that."""
    engines = [db.make_engine(db_url) for _ in range(3)]
    budgets = [SharedBudget(e, "qualio", 600) for e in engines]  # burst 30, interval 60/571 s
    granted: list[float] = []
    lock, stop = threading.Lock(), time.monotonic() + 2.0

    def ask(budget: SharedBudget) -> None:
        while time.monotonic() < stop:
            assert budget.acquire() == 0.0
            with lock:
                granted.append(time.monotonic())

    threads = [threading.Thread(target=ask, args=(b,)) for b in budgets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = budgets[0].rate
    elapsed = max(granted) - min(granted)
    assert len(granted) <= rate.burst + math.ceil(elapsed / rate.interval_seconds) + 1
    assert len(granted) >= rate.burst + 2.0 * 0.5 / rate.interval_seconds  # and not starved: half the rate at least
    assert sum(b.granted for b in budgets) == len(granted)
    for e in engines:
        e.dispose()


def test_a_pause_binds_every_budget(engine) -> None:
    first, second = SharedBudget(engine, "qualio", 200), SharedBudget(engine, "qualio", 200)
    assert first.acquire() == 0.0
    assert first.pause(5) > 4
    assert 4 < second.acquire() <= 5  # refused with the pause left, no slot taken
    assert second.granted == 0 and second.paused_for() > 4
    first.pause(1)  # a pause is only ever lengthened
    assert second.paused_for() > 4


def test_a_429_one_client_gets_pauses_the_other_process_too(engine) -> None:
    """Two clients on one database (a worker's enrichment and a reconcile): Qualio's 429 to the first pauses the
    second, which sends nothing while the pause lasts."""
    import responses

    from connector.qualio.client import QualioClient, QualioError
    from tests.qualio.support import BASE, KEY, event_url, fixture

    worker = QualioClient(BASE, KEY, limiter=SharedBudget(engine, "qualio", 200))
    reconcile = QualioClient(BASE, KEY, limiter=SharedBudget(engine, "qualio", 200))
    with responses.RequestsMock() as rsps:
        rsps.get(event_url("NCR-12"), json=fixture("error_429"), status=429)
        with pytest.raises(QualioError) as throttled:
            worker.fetch_event("NCR-12")
        assert throttled.value.status == 429 and throttled.value.retry_after >= 1  # our backoff: 2 s, jittered
        with pytest.raises(QualioError, match="paused after a 429") as refused:
            reconcile.query_events("open", 0, 100)
        assert len(rsps.calls) == 1 and refused.value.retry_after > 0  # refused locally: nothing sent
