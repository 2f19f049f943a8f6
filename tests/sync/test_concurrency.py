"""N identical deliveries at once to a real multi-process server: exactly one 202 per distinct payload."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from connector.models import Delivery, Fingerprint
from tests.conftest import TEST_SECRET
from tests.helpers import body_of, signed
from tests.processes import free_port, running

DISTINCT = 25
COPIES = 4


def payloads() -> list[bytes]:
    """Distinct changes, several of them to one NC in the same second."""
    return [body_of({"eventType": "nc.updated", "ncId": f"NC-2025-{i % 5:03d}", "timestamp": "2025-01-05T10:15:32Z",
                     "status": "open", "changedFields": ["severity"], "severity": f"level-{i}"})
            for i in range(DISTINCT)]


@pytest.mark.slow
def test_concurrent_identical_deliveries_across_processes(db_url, engine, tmp_path):
    port = free_port()
    env = {"NC_CONNECTOR_DATABASE_URL": db_url, "NC_CONNECTOR_WEBHOOK_SECRET": TEST_SECRET}
    base = f"http://127.0.0.1:{port}"
    bodies = payloads()
    # every copy of one payload carries the same webhook-id, as a sender's retries would
    jobs = [(i, body, signed(body, webhook_id=f"msg_{i}")) for i, body in enumerate(bodies) for _ in range(COPIES)]
    start = threading.Event()  # the first 16 requests leave together once all are queued

    def send(job: tuple[int, bytes, dict[str, str]]) -> tuple[int, int]:
        index, body, headers = job
        start.wait(timeout=10)
        response = requests.post(f"{base}/webhooks/qualio", data=body, headers=headers, timeout=30)
        return index, response.status_code

    with running(["serve", "--port", str(port), "--workers", "4", "--no-worker"], env, tmp_path / "serve.log",
                 ready_url=f"{base}/healthz"), ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(send, job) for job in jobs]
        start.set()
        results = [f.result() for f in futures]

    by_payload: dict[int, Counter[int]] = {}
    for index, status in results:
        by_payload.setdefault(index, Counter())[status] += 1
    print(f"\nconcurrency[{engine.dialect.name}]: sent {len(jobs)}, "
          f"202s {sum(c[202] for c in by_payload.values())}, 200s {sum(c[200] for c in by_payload.values())}")
    assert all(c == Counter({202: 1, 200: COPIES - 1}) for c in by_payload.values()), by_payload
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Delivery)).scalar_one() == DISTINCT
        assert conn.execute(select(func.count()).select_from(Fingerprint)).scalar_one() == DISTINCT
        assert conn.execute(select(func.sum(Fingerprint.times_seen))).scalar_one() == DISTINCT * COPIES
    assert "database is locked" not in (tmp_path / "serve.log").read_text()
