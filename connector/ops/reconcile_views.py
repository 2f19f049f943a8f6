"""Reconcile's last run for operators: lines of `nc-connector status` and gauges of `/metrics`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from connector.qualio.reconcile_store import last_run

__all__ = ["ReconcileCollector", "last_run", "status_lines"]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def status_lines(run: dict[str, Any] | None) -> list[str]:
    if run is None:
        return ["last reconcile: never"]
    took = f", {run['duration']:.1f}s" if run["duration"] is not None else ", still running"
    line = (f"last reconcile: {_when(run['started_at'])} ({run['trigger']}, {run['outcome']}{took}): "
            f"scanned {run['scanned']}, changed {run['changed']}, new {run['new']}, backfilled {run['backfilled']}, "
            f"unchanged {run['unchanged']}; Qualio requests {run['requests']}, 429s {run['throttled']}")
    return [line] + ([f"  error: {run['error']}"] if run.get("error") else [])


class ReconcileCollector(Collector):
    """The latest reconcile run (not a dry run), from `reconcile_runs`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        run = last_run(self.engine, finished_only=True)
        finished = run["finished_at"].timestamp() if run else 0.0
        yield GaugeMetricFamily("nc_connector_reconcile_last_run_timestamp_seconds",
                                "When the latest reconcile finished (Unix time; 0: never)", value=finished)
        yield GaugeMetricFamily("nc_connector_reconcile_last_run_duration_seconds",
                                "How long the latest reconcile took", value=float(run["duration"]) if run else 0.0)
        yield GaugeMetricFamily("nc_connector_reconcile_last_run_success",
                                "1 if the latest reconcile completed (settled), else 0",
                                value=1.0 if run and run["outcome"] == "completed" else 0.0)
        drift = GaugeMetricFamily("nc_connector_reconcile_last_drift",
                                  "NCs the latest reconcile found and queued, by kind", labels=["kind"])
        for kind in ("changed", "new", "backfilled"):
            drift.add_metric([kind], float(run[kind]) if run else 0.0)
        yield drift
        yield GaugeMetricFamily("nc_connector_reconcile_last_qualio_requests",
                                "Qualio requests of the latest reconcile", value=float(run["requests"]) if run else 0.0)
