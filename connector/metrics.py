"""The metric counters every stage increments (Prometheus). Under `serve` the web processes and the sync worker
share a multiprocess directory (`PROMETHEUS_MULTIPROC_DIR`), so `/metrics` adds up every process.

What is read from the database at scrape time (queue depth, oldest delivery) is an operator view:
connector.ops.gauges.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DELIVERIES = Counter("nc_connector_deliveries_total", "Webhook deliveries by outcome", ["outcome"])
SYNCS = Counter("nc_connector_syncs_total", "NC syncs by outcome (synced, ignored, retry, dead)", ["outcome"])
JIRA_CALLS = Histogram("nc_connector_jira_call_seconds", "Jira call latency by method and status",
                       ["method", "status"])
DUPLICATE_ISSUES = Counter("nc_connector_duplicate_issues_total",
                           "Times several Jira issues were found carrying one NC's marker label")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
