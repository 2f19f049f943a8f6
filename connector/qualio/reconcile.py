"""Reconcile: find in Qualio's API what the webhooks missed (and, with backfill, what predates the install).

One pass: the NC templates (``qualio_nc_prefixes``) from ``GET /v1/events/templates``, then every status of
each, page by page (``sweep``). Each page's summaries are judged against what the connector applied and
last queued (``drift.decide``, pure); an NC that drifted gets a **thin delivery queued through
``connector.receive.store``**, exactly as a webhook would have queued it (same canonical-JSON fingerprint,
same table, same wake-up), marked ``source = "reconcile"``. The worker then syncs it like any delivery: it
fetches the NC's detail record (enrichment), maps it and applies it to Jira under the same exactly-once
rules and rate limits. So reconcile itself never fetches a detail: an NC whose summary shows no change
costs nothing beyond its share of a page.

``qualio`` imports ``receive`` for this (nothing else does): a second source of deliveries must enter the
queue through the one door webhooks use, and the periodic run in the worker needs the same code as the CLI.

One reconcile at a time per installation: a lease row (``reconcile_state``), renewed as pages are read.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine

from connector.identity import process_id
from connector.qualio import reconcile_store as store
from connector.qualio.client import QualioAuthError, QualioClient, QualioError
from connector.qualio.drift import STATUSES, Decision, Known, Summary, Verdict, decide, summary_from_item
from connector.qualio.sweep import Page, Progress, StatusSweep, settle, sweep_status
from connector.receive.events import parse_event
from connector.receive.fingerprint import fingerprint
from connector.receive.store import record_delivery

__all__ = ["STATUSES", "ReconcileFailed", "ReconcileReport", "Reconciler"]

log = logging.getLogger(__name__)
Out = TypeVar("Out")

LEASE_SECONDS = 300.0
RENEW_EVERY = 30.0
MAX_THROTTLED_WAITS = 30  # 429s in a row on one request before the run gives up
TRANSIENT_DELAYS = (1.0, 2.0, 4.0)  # waits before giving up on a 5xx or a transport error


class ReconcileFailed(RuntimeError):
    """The pass could not complete (Qualio refused the key, no NC template, Qualio kept failing)."""


@dataclass
class ReconcileReport:
    run_id: int
    dry_run: bool
    watermark: datetime
    watermark_set: bool  # this run recorded it (the first run)
    figures: store.RunFigures
    sweeps: list[StatusSweep] = field(default_factory=list)
    drift: list[Decision] = field(default_factory=list)  # what was (or, in a dry run, would be) queued
    seconds: float = 0.0

    @property
    def settled(self) -> bool:
        return all(s.settled for s in self.sweeps)


class Reconciler:
    """One reconcile pass with ``run``. ``sleep`` and ``clock`` are for the tests."""

    def __init__(self, engine: Engine, client: QualioClient, prefixes: tuple[str, ...], page_size: int = 100,
                 fingerprint_exclude: tuple[str, ...] = (), owner: str | None = None,
                 progress: Progress | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.client = client
        self.prefixes = tuple(p.upper() for p in prefixes)
        self.page_size = page_size
        self.exclude = fingerprint_exclude
        self.owner = owner or process_id()
        self.progress = progress
        self._sleep = sleep
        self._clock = clock
        self._renewed = 0.0

    def run(self, trigger: str = "cli", dry_run: bool = False,
            backfill: frozenset[str] = frozenset()) -> ReconcileReport:
        """Sweep, judge, queue (not in a dry run); LeaseLost if another reconcile runs, ReconcileFailed."""
        started = self._clock()
        if not dry_run:
            store.take_lease(self.engine, self.owner, LEASE_SECONDS)
            self._renewed = started
        try:
            mark, first = store.watermark(self.engine, record=not dry_run)
            report = ReconcileReport(store.start_run(self.engine, trigger, dry_run), dry_run, mark, first,
                                     store.RunFigures())
            self._pass(report, backfill, started)
            return report
        finally:
            if not dry_run:
                store.release(self.engine, self.owner)

    def _pass(self, report: ReconcileReport, backfill: frozenset[str], started: float) -> None:
        requests0, throttled0 = self.client.requests, self.client.throttled
        judged: set[tuple[str, datetime]] = set()  # rows handled in this run: a repeated row is skipped
        def handle(status: str, rows: list[object]) -> None:
            self._judge(report, rows, backfill, judged)

        try:
            for template_id in self._templates():
                def read(status: str, offset: int, limit: int, template: str = template_id) -> Page:
                    return self._read_page(status, offset, limit, template)

                sweeps = [sweep_status(read, status, self.page_size, handle, self.progress) for status in STATUSES]
                settle(read, sweeps, self.page_size, handle, self.progress)
                report.sweeps.extend(sweeps)
        except BaseException as exc:
            self._count(report, requests0, throttled0, started)
            store.finish_run(self.engine, report.run_id, report.figures, "failed", _why(exc))
            if isinstance(exc, QualioError):
                raise ReconcileFailed(f"Qualio: {exc.message}") from None
            raise
        self._count(report, requests0, throttled0, started)
        outcome = "completed" if report.settled else "unsettled"
        store.finish_run(self.engine, report.run_id, report.figures, outcome)
        log.info("reconcile finished", extra={"outcome": outcome, "dry_run": report.dry_run,
                                              **vars(report.figures), "seconds": round(report.seconds, 1)})

    def _count(self, report: ReconcileReport, requests0: int, throttled0: int, started: float) -> None:
        report.figures.requests = self.client.requests - requests0
        report.figures.throttled = self.client.throttled - throttled0
        report.seconds = self._clock() - started

    def _templates(self) -> list[str]:
        templates = self._call(self.client.list_templates)
        ids = [str(t["event_template_matrix_id"]) for t in templates
               if str(t.get("prefix", "")).upper() in self.prefixes and t.get("event_template_matrix_id")]
        if not ids:
            found = ", ".join(sorted({str(t.get("prefix")) for t in templates})) or "none"
            raise ReconcileFailed(f"no Qualio event template has the prefix {', '.join(self.prefixes)} "
                                  f"(templates found: {found}); set NC_CONNECTOR_QUALIO_NC_PREFIXES")
        return list(dict.fromkeys(ids))

    def _read_page(self, status: str, offset: int, limit: int, template_id: str) -> Page:
        page = self._call(lambda: self.client.query_events(status, offset, limit, template_id))
        return Page(items=list(page["items"]), total=int(page["total"]))

    def _call(self, call: Callable[[], Out]) -> Out:
        """A Qualio call, waiting out 429s (the shared pause) and a few transient failures; else it raises."""
        throttled, transient = 0, 0
        while True:
            self._keep_lease()  # also between 429 waits: a long pause must not let the lease lapse
            try:
                return call()
            except QualioAuthError:
                raise
            except QualioError as exc:
                if exc.status == 429 and throttled < MAX_THROTTLED_WAITS:
                    throttled += 1
                    self._sleep(max(0.05, exc.retry_after or 1.0))
                elif exc.retryable and exc.status != 429 and transient < len(TRANSIENT_DELAYS):
                    self._sleep(TRANSIENT_DELAYS[transient])
                    transient += 1
                else:
                    raise

    def _keep_lease(self) -> None:
        if self._renewed and self._clock() - self._renewed >= RENEW_EVERY:
            store.renew(self.engine, self.owner, LEASE_SECONDS)
            self._renewed = self._clock()

    def _judge(self, report: ReconcileReport, rows: list[object], backfill: frozenset[str],
               judged: set[tuple[str, datetime]]) -> None:
        summaries: list[Summary] = []
        for row in rows:
            summary = summary_from_item(row)
            if summary is None:
                log.warning("reconcile skipped an event summary without a code or modified_at")
            elif (summary.code, summary.modified_at) not in judged:
                judged.add((summary.code, summary.modified_at))
                summaries.append(summary)
        known = store.known(self.engine, (s.code for s in summaries))
        decisions = [decide(s, known.get(s.code, _NEVER), report.watermark, backfill) for s in summaries]
        marks: dict[str, tuple[datetime, str]] = {}
        for decision in decisions:
            self._tally(report.figures, decision.verdict)
            if decision.verdict.queues:
                report.drift.append(decision)
                if not report.dry_run:
                    self._queue(decision)
                    marks[decision.summary.code] = (decision.summary.modified_at, decision.summary.status)
        store.put_marks(self.engine, marks)

    @staticmethod
    def _tally(figures: store.RunFigures, verdict: Verdict) -> None:
        figures.scanned += 1
        name = {Verdict.UNCHANGED: "unchanged", Verdict.CHANGED: "changed", Verdict.NEW: "new",
                Verdict.BACKFILL: "backfilled", Verdict.PRE_INSTALL: "pre_install"}[verdict]
        setattr(figures, name, getattr(figures, name) + 1)

    def _queue(self, decision: Decision) -> None:
        """A thin delivery for the NC, through the webhook's own door (parse, fingerprint, store)."""
        payload = {"eventType": decision.event_type, "ncId": decision.summary.code,
                   "timestamp": decision.summary.modified_at.isoformat().replace("+00:00", "Z")}
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        event = parse_event(body)
        record_delivery(self.engine, event, body, fingerprint(event.payload, self.exclude), None, source="reconcile")


_NEVER = Known()  # an NC the connector never saw


def _why(exc: BaseException) -> str:
    if isinstance(exc, QualioError):
        return f"Qualio: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
