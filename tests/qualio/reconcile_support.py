"""What the reconcile tests share: the Qualio stand-in in a thread, a reconciler and a worker on it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connector.budgets import SharedBudget
from connector.mapping.load import default_mapping_path, load_mapping
from connector.models import Delivery
from connector.qualio.client import QualioClient
from connector.qualio.enrich import QualioEnricher
from connector.qualio.reconcile import Reconciler, ReconcileReport
from connector.sandbox.qualio import QualioState, RunningQualio, start_in_thread
from connector.sync.apply import Syncer
from connector.sync.worker import Worker
from tests.conftest import make_settings
from tests.fake_jira import FakeJira
from tests.sync.helpers import drain

KEY = "qualio-test-key"
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def qualio() -> Iterator[RunningQualio]:
    with start_in_thread(QualioState(KEY, limit_per_minute=None)) as running:
        yield running


def client(url: str, engine: Engine, limit: int = 60_000) -> QualioClient:
    return QualioClient(url, KEY, timeout=5, limiter=SharedBudget(engine, "qualio", limit))


def reconcile(engine: Engine, url: str, dry_run: bool = False, backfill: frozenset[str] = frozenset(),
              page_size: int = 3, **options: Any) -> ReconcileReport:
    reconciler = Reconciler(engine, client(url, engine), ("NCR",), page_size=page_size, **options)
    return reconciler.run("cli", dry_run=dry_run, backfill=backfill)


def make_worker(engine: Engine, db_url: str, jira: FakeJira, url: str) -> Worker:
    settings = make_settings(db_url, NC_CONNECTOR_MAX_ATTEMPTS="3", NC_CONNECTOR_RETRY_BASE="0.01s")
    mapping = load_mapping(default_mapping_path(), project_override="QA")
    enricher = QualioEnricher(client(url, engine), not_found_attempts=1)
    return Worker(engine, settings, Syncer(engine, jira, mapping, settings.jira_search_lag, enricher))


def sync_all(worker: Worker) -> None:
    drain(worker)


def soon(seconds: float) -> datetime:
    """A moment after now, at whole seconds (Qualio's times have no fraction): after a watermark set in the next
    ``seconds`` (keep it well above the test's set-up time on a loaded machine)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds + 1)).replace(microsecond=0)


def sources(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(Delivery.nc_id, Delivery.event_type, Delivery.source)
                                               .order_by(Delivery.id))]
