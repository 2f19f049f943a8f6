"""Optional enrichment: thin events are completed with the NC's current record from Qualio's API.

The rule for thin events (see README, "Thin events"): the record is fetched when a worker
*syncs* the NC, after it has claimed every queued delivery of that NC, so it reflects every
change whose delivery arrived before the claim. A thin duplicate that arrives after its
original was claimed re-queues the NC (store.record_delivery), so a change made in Qualio
while a fetch was in flight is fetched again rather than lost.
"""

from __future__ import annotations

from typing import Any

from connector.qualio.client import QualioClient, QualioError, nc_record_from_event
from connector.sync.errors import Permanent, RetryLater


class QualioEnricher:
    def __init__(self, client: QualioClient) -> None:
        self.client = client

    def fetch(self, nc_id: str) -> dict[str, Any]:
        try:
            record = nc_record_from_event(self.client.fetch_event(nc_id))
        except QualioError as exc:
            if exc.retryable:
                raise RetryLater(f"Qualio: {exc.message}", exc.retry_after) from None
            raise Permanent(f"Qualio refused ({exc.status}): {exc.message}") from None
        return {k: v for k, v in record.items() if v is not None}
