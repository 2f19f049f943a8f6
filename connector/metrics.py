"""Prometheus metrics: counters from every process (gunicorn workers and the sync worker share a
multiprocess directory under `serve`), plus queue figures read from the database at scrape time."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

DELIVERIES = Counter("nc_connector_deliveries_total", "Webhook deliveries by outcome", ["outcome"])
SYNCS = Counter("nc_connector_syncs_total", "NC syncs by outcome (synced, ignored, retry, dead)", ["outcome"])
JIRA_CALLS = Histogram("nc_connector_jira_call_seconds", "Jira call latency by method and status",
                       ["method", "status"])
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class QueueCollector(Collector):
    """Queue depth by status and the age of the oldest waiting delivery, from the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from connector.clock import utcnow
        from connector.sync.queue import queue_figures

        figures = queue_figures(self.engine)
        depth = GaugeMetricFamily("nc_connector_deliveries", "Stored deliveries by status", labels=["status"])
        for status in ("queued", "processing", "done", "ignored", "dead"):
            depth.add_metric([status], float(figures["counts"].get(status, 0)))  # type: ignore[attr-defined]
        yield depth
        oldest = figures["oldest_queued_at"]
        age = (utcnow() - oldest).total_seconds() if oldest else 0.0  # type: ignore[operator]
        yield GaugeMetricFamily("nc_connector_oldest_queued_age_seconds",
                                "Age of the oldest delivery not yet synced", value=age)
        dead = float(figures["counts"].get("dead", 0))  # type: ignore[attr-defined]
        yield GaugeMetricFamily("nc_connector_dead_letters", "Deliveries parked as dead letters", value=dead)


def render(engine: Engine) -> bytes:
    """The text exposition: process counters (all processes when multiprocess) + queue gauges."""
    if os.environ.get(MULTIPROC_ENV):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)  # type: ignore[no-untyped-call]
    else:
        counters = REGISTRY
    queue = CollectorRegistry()
    queue.register(QueueCollector(engine))
    return generate_latest(counters) + generate_latest(queue)
