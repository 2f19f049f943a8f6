"""`nc-connector reconcile` (its body; cli.py declares the options) and the periodic run in the worker.

Both share the installation's Qualio budget (`connector.budgets.SharedBudget`) with every worker's enrichment.
"""

from __future__ import annotations

import sys
import threading
from typing import IO

import click
from sqlalchemy import Engine

from connector import db
from connector.budgets import SharedBudget
from connector.qualio.client import QualioClient
from connector.qualio.reconcile import STATUSES, ReconcileFailed, Reconciler, ReconcileReport
from connector.qualio.reconcile_store import LeaseLost
from connector.settings import ENV_PREFIX, Settings

__all__ = ["STATUSES", "main", "qualio_client", "reconciler", "start_periodic"]

BUDGET_NAME = "qualio"


def qualio_client(settings: Settings, engine: Engine) -> QualioClient:
    """A Qualio client on the installation's shared budget (the same row for every process)."""
    budget = SharedBudget(engine, BUDGET_NAME, settings.qualio_max_per_minute)
    return QualioClient(settings.qualio_url, settings.qualio_api_key, timeout=settings.jira_timeout,
                        limiter=budget)


def reconciler(settings: Settings, engine: Engine, progress: ProgressBar | None = None) -> Reconciler:
    return Reconciler(engine, qualio_client(settings, engine), settings.qualio_nc_prefixes,
                      page_size=max(2, settings.qualio_page_size), fingerprint_exclude=settings.fingerprint_exclude,
                      progress=progress)


def start_periodic(settings: Settings, stop: threading.Event) -> threading.Thread | None:
    """The worker's periodic reconcile thread, when a Qualio key is set and the interval is not 0."""
    if not settings.qualio_api_key or not settings.reconcile_interval:
        return None
    from connector.qualio.periodic import PeriodicReconcile

    engine = db.make_engine(settings.database_url)
    return PeriodicReconcile(engine, lambda: reconciler(settings, engine), settings.reconcile_interval).start(stop)


def main(settings: Settings, dry_run: bool, backfill: bool, statuses: tuple[str, ...]) -> None:
    """One pass, then exit: 0 when it completed; 2 (UsageError) for bad input or no key; 1 when it failed."""
    if statuses and not backfill:
        raise click.UsageError("--status chooses what --backfill queues: give --backfill too")
    if not settings.qualio_api_key:
        raise click.UsageError(f"no Qualio API key: set {ENV_PREFIX}QUALIO_API_KEY to reconcile with Qualio")
    engine = db.make_engine(settings.database_url)
    if db.current_revision(engine) != db.head_revision():
        raise click.UsageError("the database is not at the latest schema: run `nc-connector db upgrade` first")
    chosen = frozenset(statuses or ("open",)) if backfill else frozenset()
    bar = ProgressBar(sys.stderr)
    try:
        report = reconciler(settings, engine, bar).run("cli", dry_run=dry_run, backfill=chosen)
    except LeaseLost as exc:
        raise click.ClickException(f"{exc}; try again when it has finished") from None
    except ReconcileFailed as exc:
        raise click.ClickException(f"reconcile failed: {exc}") from None
    finally:
        bar.done()
    if dry_run:
        click.echo(drift_table(report))
    click.echo(summary(report))
    if not report.settled:
        sys.exit(1)


class ProgressBar:
    """Items read of ``total`` for the status being swept, redrawn in place on a terminal, else a line per
    status when it is done."""

    WIDTH = 30

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.current: tuple[str, int, int] | None = None

    def __call__(self, status: str, read: int, total: int) -> None:
        if self.current and self.current[0] != status:
            self._finish()
        self.current = (status, read, total)
        if read >= total:  # this pass of the status is read: its line is final
            self._finish()
        elif self.tty:
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def _line(self) -> str:
        assert self.current is not None
        status, read, total = self.current
        filled = self.WIDTH if total <= 0 else min(self.WIDTH, self.WIDTH * read // total)
        return f"  {status:<10} [{'#' * filled}{' ' * (self.WIDTH - filled)}] {read:>7,} / {total:,}"

    def _finish(self) -> None:
        if self.current is not None:
            self.stream.write(("\r" if self.tty else "") + self._line() + "\n")
            self.stream.flush()
        self.current = None

    def done(self) -> None:
        self._finish()


def drift_table(report: ReconcileReport) -> str:
    if not report.drift:
        return "no drift: nothing would be queued"
    rows = [("NC", "status", "drift", "what differs", "would queue")]
    rows += [(d.summary.code, d.summary.status, d.verdict.value, d.why, f"{d.event_type} (source reconcile)")
             for d in report.drift]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def summary(report: ReconcileReport) -> str:
    f = report.figures
    mark = report.watermark.isoformat(timespec="seconds").replace("+00:00", "Z")
    state = "recorded by this run" if report.watermark_set and not report.dry_run else (
        "not recorded: dry run" if report.watermark_set else "recorded earlier")
    unsettled = [s.status for s in report.sweeps if not s.settled]
    head = ("dry run: nothing queued" if report.dry_run else
            "reconcile completed" if not unsettled else f"reconcile unsettled ({', '.join(unsettled)} kept moving)")
    return "\n".join([
        f"{head} in {report.seconds:.1f} s; watermark {mark} ({state})",
        f"scanned {f.scanned:,}  changed {f.changed:,}  new {f.new:,}  backfilled {f.backfilled:,}  "
        f"unchanged {f.unchanged:,}  pre-install left alone {f.pre_install:,}",
        f"Qualio requests {f.requests:,}  429s {f.throttled:,}  re-swept {sum(s.passes - 1 for s in report.sweeps)}",
    ])
