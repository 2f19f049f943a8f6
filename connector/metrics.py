"""Prometheus metrics. Counters live in each process; queue figures are read from the database."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DELIVERIES = Counter("nc_connector_deliveries_total", "Webhook deliveries by outcome", ["outcome"])
SYNCS = Counter("nc_connector_syncs_total", "NC syncs by outcome", ["outcome"])
JIRA_CALLS = Histogram("nc_connector_jira_call_seconds", "Jira call latency by method and status",
                       ["method", "status"])
