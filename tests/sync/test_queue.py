"""Claims: one NC at a time per worker, leases, take-over after a crash, and our own unreleased claims."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update

from connector import throttles
from connector.clock import utcnow
from connector.models import Delivery
from connector.receive.events import validate_event
from connector.receive.fingerprint import fingerprint
from connector.receive.store import record_delivery
from connector.sync import queue


def deliver(engine, nc_id: str, title: str) -> None:
    payload = {"eventType": "nc.updated", "ncId": nc_id, "timestamp": "2025-01-05T10:15:32Z", "title": title}
    record_delivery(engine, validate_event(payload), json.dumps(payload).encode(), fingerprint(payload), None)


def test_a_claim_takes_every_queued_delivery_of_one_nc(engine):
    deliver(engine, "NC-1-1", "a")
    deliver(engine, "NC-2-2", "b")
    deliver(engine, "NC-1-1", "c")
    claim = queue.claim_next(engine, "w1", 60)
    assert claim.nc_id == "NC-1-1" and claim.ids == [1, 3]
    other = queue.claim_next(engine, "w2", 60)
    assert other.nc_id == "NC-2-2"  # NC-1-1 is held by w1
    assert queue.claim_next(engine, "w3", 60) is None


def test_a_new_delivery_of_a_held_nc_waits_for_the_holder(engine):
    deliver(engine, "NC-1-1", "a")
    assert queue.claim_next(engine, "w1", 60).nc_id == "NC-1-1"
    deliver(engine, "NC-1-1", "b")
    assert queue.claim_next(engine, "w2", 60) is None  # per-NC serialisation across workers


def test_an_expired_lease_is_taken_over(engine):
    deliver(engine, "NC-1-1", "a")
    queue.claim_next(engine, "crashed", 60)
    with engine.begin() as conn:
        conn.execute(update(Delivery).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    claim = queue.claim_next(engine, "w2", 60)
    assert claim is not None and claim.ids == [1]


def test_own_unreleased_claim_is_taken_again_without_waiting_for_the_lease(engine):
    deliver(engine, "NC-1-1", "a")
    queue.claim_next(engine, "w1", 600)  # say the release failed: the rows stay "processing" for w1
    deliver(engine, "NC-1-1", "b")
    again = queue.claim_next(engine, "w1", 600)
    assert again is not None and again.ids == [1, 2]
    assert queue.claim_next(engine, "w2", 600) is None


def test_throttle_pauses_every_worker(engine):
    assert throttles.paused_for(engine, "jira") == 0
    throttles.pause(engine, "jira", 30)
    throttles.pause(engine, "jira", 5)  # a shorter pause never shortens a longer one
    assert 25 < throttles.paused_for(engine, "jira") <= 30


def test_several_pauses_are_recorded_together_and_read_in_one_query(engine):
    throttles.pause_all(engine, {"jira": 5, "jira-careful": 30})
    throttles.pause_all(engine, {"jira": 1, "jira-careful": 60})  # each only ever lengthened
    waits = throttles.throttled(engine, "jira", "jira-careful", "never-paused")
    assert 3 < waits["jira"] <= 5 and 55 < waits["jira-careful"] <= 60 and waits["never-paused"] == 0


def test_a_new_delivery_does_not_pull_a_waiting_one_forward(engine):
    deliver(engine, "NC-1-1", "a")
    claim = queue.claim_next(engine, "w1", 60)
    queue.retry_later(engine, claim, "Jira: read timed out", delay=30, max_attempts=5)
    deliver(engine, "NC-1-1", "b")  # due now, but its NC waits for the retry delay
    deliver(engine, "NC-2-2", "c")
    assert queue.claim_next(engine, "w1", 60).nc_id == "NC-2-2"
    assert queue.claim_next(engine, "w2", 60) is None
