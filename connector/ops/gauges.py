"""The `/metrics` exposition: every process's counters (connector.metrics) plus queue gauges read from the
database at scrape time."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from connector import throttles
from connector.clock import utcnow
from connector.metrics import MULTIPROC_ENV
from connector.models import DeliveryStatus
from connector.ops.reconcile_views import ReconcileCollector
from connector.sync import heartbeat
from connector.sync.queue import queue_figures


class QueueCollector(Collector):
    """Queue depth by status and the age of the oldest waiting delivery, from the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:

        figures = queue_figures(self.engine)
        depth = GaugeMetricFamily("nc_connector_deliveries", "Stored deliveries by status", labels=["status"])
        for status in DeliveryStatus:
            depth.add_metric([status], float(figures["counts"].get(status, 0)))  # type: ignore[attr-defined]
        yield depth
        oldest = figures["oldest_queued_at"]
        age = (utcnow() - oldest).total_seconds() if oldest else 0.0  # type: ignore[operator]
        yield GaugeMetricFamily("nc_connector_oldest_queued_age_seconds",
                                "Age of the oldest delivery not yet synced", value=age)
        dead = float(figures["counts"].get(DeliveryStatus.DEAD, 0))  # type: ignore[attr-defined]
        yield GaugeMetricFamily("nc_connector_dead_letters", "Deliveries parked as dead letters", value=dead)
        fault = throttles.fault(self.engine)
        yield GaugeMetricFamily("nc_connector_installation_fault",
                                "1 while every worker is paused by a fault of the installation (credentials, "
                                "permissions)", value=1.0 if fault else 0.0)
        yield GaugeMetricFamily("nc_connector_installation_fault_probes", "Failed probes of that fault in a row",
                                value=float(fault.strikes) if fault else 0.0)
        beats = GaugeMetricFamily("nc_connector_worker_heartbeat_age_seconds",
                                  "Seconds since each sync worker's last heartbeat (the workers table)",
                                  labels=["worker", "host", "pid"])
        for worker in heartbeat.list_workers(self.engine):
            beats.add_metric([worker.id, worker.host, str(worker.pid)], worker.age_seconds)
        yield beats


def render(engine: Engine) -> bytes:
    """The text exposition: process counters (all processes when multiprocess) + queue gauges."""
    if os.environ.get(MULTIPROC_ENV):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)  # type: ignore[no-untyped-call]
    else:
        counters = REGISTRY
    queue = CollectorRegistry()
    queue.register(QueueCollector(engine))
    queue.register(ReconcileCollector(engine))
    return generate_latest(counters) + generate_latest(queue)
