"""The sync engine on a real database with an in-memory Jira: one issue per NC, updates in place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from connector import throttles
from connector.clock import utcnow
from connector.jira.gateway import JiraError, Pressure
from connector.jira.throttle import CAREFUL, JiraThrottle, LockBusy
from connector.mapping.load import default_mapping_path, load_mapping
from connector.models import CommentLink, Delivery, NcLink
from connector.sync import links, queue
from connector.sync.apply import Syncer
from connector.sync.errors import RetryLater
from connector.sync.worker import Worker
from tests.conftest import FIXTURES, load_fixture, make_settings
from tests.fake_jira import status_ref
from tests.sync.helpers import deliver, drain, statuses


def test_first_event_creates_later_events_update_the_same_issue(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    deliver(engine, {**load_fixture("nc_created"), "eventType": "nc.updated", "title": "Renamed",
                     "timestamp": "2025-02-02T08:00:00Z"})
    drain(worker)
    deliver(engine, load_fixture("nc_closed"))
    drain(worker)
    # the rename changes summary and link title; the close changes the description and the status
    assert [m for m, _ in jira.writes()] == ["create_issue", "upsert_remote_link", "update_issue",
                                             "upsert_remote_link", "update_issue", "transition_issue"]
    (issue,) = jira.issues.values()
    assert issue.fields["summary"] == "[NCR-12] Renamed" and issue.status == "Done"
    assert list(issue.links) == ["qualio-nc:NCR-12"]
    assert statuses(engine) == ["done", "done", "done"]
    link = links.get(engine, "NCR-12")
    assert link.state == "linked" and link.jira_key == issue.key and link.jira_status == status_ref("Done")


def test_a_status_change_costs_one_read_for_status_and_transitions(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    jira.calls.clear()
    deliver(engine, load_fixture("nc_closed"))
    drain(worker)
    # get_issue brings the transitions along (expand=transitions): no second read before the transition
    assert [m for m, _ in jira.calls] == ["update_issue", "get_issue", "transition_issue"]


def test_queued_deliveries_of_one_nc_are_coalesced(engine, worker, jira):
    deliver(engine, load_fixture("same_second_status_changed"))
    deliver(engine, load_fixture("same_second_comment_added"))
    deliver(engine, {**load_fixture("same_second_status_changed"), "timestamp": "2025-01-05T10:16:00Z",
                     "title": "Newest title"})
    drain(worker)
    assert [m for m, _ in jira.writes()] == ["create_issue", "transition_issue", "add_comment"]
    (issue,) = jira.issues.values()
    assert issue.fields["summary"] == "[NC-2025-002] Newest title" and issue.status == "In Progress"
    assert "Root cause: firmware" in issue.comments[0][1]


def test_identical_render_makes_no_jira_write(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    before = len(jira.writes())
    # a new delivery (new timestamp) whose mapped fields are the same
    deliver(engine, {**load_fixture("nc_created"), "eventType": "nc.updated", "timestamp": "2025-02-03T00:00:00Z"})
    drain(worker)
    assert len(jira.writes()) == before and statuses(engine) == ["done", "done"]


def test_out_of_order_delivery_keeps_the_newest_state(engine, worker, jira):
    deliver(engine, {**load_fixture("nc_created"), "title": "Newest", "timestamp": "2025-02-05T00:00:00Z"})
    drain(worker)
    deliver(engine, {**load_fixture("nc_created"), "eventType": "nc.updated", "title": "Older"})
    drain(worker)
    (issue,) = jira.issues.values()
    assert issue.fields["summary"] == "[NCR-12] Newest"
    assert [m for m, _ in jira.writes()].count("update_issue") == 0


def test_comment_redelivery_and_replay_post_once(engine, worker, jira):
    payload = load_fixture("same_second_comment_added")
    deliver(engine, payload)
    drain(worker)
    deliver(engine, {**payload, "timestamp": "2025-01-05T10:20:00Z"})  # same comment, other envelope
    drain(worker)
    with engine.begin() as conn:
        conn.execute(update(Delivery).values(status="dead"))
    queue.replay(engine, all_dead=True)
    drain(worker)
    (issue,) = jira.issues.values()
    assert len(issue.comments) == 1


def test_comment_post_whose_answer_is_lost_is_not_doubled(engine, worker, jira):
    deliver(engine, load_fixture("same_second_comment_added"))
    jira.lose_answer.add("add_comment")
    drain(worker)
    (issue,) = jira.issues.values()
    assert len(issue.comments) == 1 and statuses(engine) == ["done"]
    assert ("comments", issue.key) in jira.calls  # the retry looked before posting


def test_create_whose_answer_is_lost_is_found_by_label_not_created_again(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    jira.lose_answer.add("create_issue")
    drain(worker)
    assert len(jira.issues) == 1 and statuses(engine) == ["done"]
    assert links.get(engine, "NCR-12").jira_key == next(iter(jira.issues))


def test_search_lag_cannot_produce_a_second_issue(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    jira.lose_answer.add("create_issue")
    jira.search_visible = False  # Jira Cloud's index has not caught up
    drain(worker)
    assert len(jira.issues) == 1
    assert statuses(engine) == ["queued"]  # waiting out the lag, not counted as a failed attempt
    with engine.connect() as conn:
        row = conn.execute(select(Delivery)).one()
    assert row.attempts == 1 and row.next_attempt_at > utcnow() + timedelta(seconds=30)
    jira.search_visible = True
    drain(worker)
    assert len(jira.issues) == 1 and statuses(engine) == ["done"]


def test_lag_window_passed_without_a_trace_creates(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    jira.fail_next["create_issue"] = [JiraError("timed out", status=None, retryable=True, outcome_unknown=True)]
    drain(worker, rounds=1)
    with engine.begin() as conn:
        conn.execute(update(NcLink).values(create_started_at=utcnow() - timedelta(seconds=61)))
    drain(worker)
    assert len(jira.issues) == 1 and statuses(engine) == ["done"]


def test_hand_made_issue_with_the_marker_is_adopted(engine, worker, jira):
    key = jira.create_issue({"summary": "made by hand", "labels": ["qualio-nc-NCR-12"]})
    jira.calls.clear()
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    assert len(jira.issues) == 1 and links.get(engine, "NCR-12").jira_key == key
    assert jira.issues[key].fields["summary"].startswith("[NCR-12]")


def test_rate_limit_honours_retry_after_for_every_worker(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    jira.fail_next["find_issues_by_label"] = [JiraError("rate limited", status=429, retry_after=30, retryable=True)]
    worker.run_once()
    assert throttles.paused_for(engine, "jira") > 25
    assert worker.run_once() is False  # paused: no Jira call before Retry-After
    with engine.connect() as conn:
        row = conn.execute(select(Delivery)).one()
    assert row.status == "queued" and row.attempts == 0 and "rate limited" in row.last_error  # a 429 costs none


def test_permanent_error_goes_to_dead_letter_and_replay_recovers(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    jira.fail_next["create_issue"] = [JiraError("priority: Priority name 'High' is not valid", status=400,
                                                retryable=False)]
    drain(worker)
    with engine.connect() as conn:
        row = conn.execute(select(Delivery)).one()
    assert row.status == "dead" and "Priority name" in row.last_error and jira.issues == {}
    assert queue.replay(engine, [row.id]) == 1
    drain(worker)
    assert statuses(engine) == ["done"] and len(jira.issues) == 1


def test_retry_budget_then_dead_letter(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    jira.fail_next["find_issues_by_label"] = [JiraError("down", status=503, retryable=True) for _ in range(5)]
    drain(worker)
    with engine.connect() as conn:
        row = conn.execute(select(Delivery)).one()
    assert row.status == "dead" and row.attempts == 3


def test_a_status_changed_in_jira_is_walked_back_through_the_workflow(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    (issue,) = jira.issues.values()
    issue.status = "Done"  # someone closed it in Jira; our recorded status says To Do
    deliver(engine, {**load_fixture("nc_created"), "eventType": "nc.status_changed", "status": "under_investigation",
                     "timestamp": "2025-02-03T00:00:00Z"})
    drain(worker)
    assert statuses(engine)[-1] == "done" and issue.status == "In Progress"  # Done -> Reopen -> To Do -> Start
    assert [t for _, t, _ in jira.transition_fields] == ["41", "11"]


def test_no_way_to_the_target_is_a_dead_letter_naming_status_target_and_options(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    (issue,) = jira.issues.values()
    issue.status = "Done"
    jira.workflow = {**jira.workflow, "Done": []}  # a workflow that never reopens
    deliver(engine, {**load_fixture("nc_created"), "eventType": "nc.status_changed", "status": "under_investigation",
                     "timestamp": "2025-02-03T00:00:00Z"})
    drain(worker)
    with engine.connect() as conn:
        last = conn.execute(select(Delivery).order_by(Delivery.id.desc())).first()
    assert last.status == "dead" and last.failed_step == "transition"
    assert "from 'Done' to category 'indeterminate' (In Progress)" in last.last_error
    assert "available: none" in last.last_error


def test_unknown_event_type_is_recorded_and_ignored(engine, worker, jira):
    deliver(engine, load_fixture("unknown_event_type"))
    drain(worker)
    assert statuses(engine) == ["ignored"] and jira.calls == []


@pytest.fixture
def enriched_worker(engine, db_url, jira):
    from connector.qualio.client import QualioClient
    from connector.qualio.enrich import QualioEnricher

    settings = make_settings(db_url, NC_CONNECTOR_MAX_ATTEMPTS="3", NC_CONNECTOR_RETRY_BASE="0.01s")
    mapping = load_mapping(default_mapping_path(), project_override="QA")
    enricher = QualioEnricher(QualioClient("https://api.qualio.test", "key-1"))
    return Worker(engine, settings, Syncer(engine, jira, mapping, settings.jira_search_lag, enricher))


def test_thin_event_is_enriched_from_qualio(engine, enriched_worker, jira):
    import responses

    record = json.loads((FIXTURES / "qualio" / "event_ncr_12.json").read_text())
    with responses.RequestsMock() as mock:
        mock.get("https://api.qualio.test/v1/events/events/NCR-12", json=record)
        deliver(engine, {"eventType": "nc.updated", "ncId": "NCR-12", "timestamp": "2025-02-01T08:00:00Z"})
        drain(enriched_worker)
        assert mock.calls[0].request.headers["X-Api-Key"] == "key-1"
    (issue,) = jira.issues.values()
    assert issue.fields["summary"] == f"[NCR-12] {record['title']}"
    assert record["url"] in [link["object"]["url"] for link in issue.links.values()]


def test_qualio_rate_limit_is_a_retry_not_a_dead_letter(engine, enriched_worker, jira):
    import responses

    with responses.RequestsMock() as mock:
        mock.get("https://api.qualio.test/v1/events/events/NCR-12", status=429, headers={"Retry-After": "30"},
                 json={"message": "Too many requests"})
        deliver(engine, {"eventType": "nc.updated", "ncId": "NCR-12", "timestamp": "2025-02-01T08:00:00Z"})
        enriched_worker.run_once()
    with engine.connect() as conn:
        row = conn.execute(select(Delivery)).one()
    assert row.status == "queued" and row.next_attempt_at > utcnow() + timedelta(seconds=25)
    assert jira.calls == []


def test_every_log_line_about_a_sync_names_the_nc_deliveries_and_issue(engine, worker, jira, caplog):
    caplog.set_level("INFO")
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    loggers = ("connector.sync.apply", "connector.sync.worker")
    about = [r for r in caplog.records if r.name in loggers and "started" not in r.msg]
    assert about
    for record in about:
        assert record.nc_id == "NCR-12" and record.delivery_ids == [1] and record.jira_key == "QA-1"


def test_retry_after_received_by_another_worker_stops_this_sync_between_calls(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    jira.before["create_issue"] = lambda: throttles.pause(engine, "jira", 30)  # another worker got a 429
    worker.run_once()
    assert [m for m, _ in jira.writes()] == ["create_issue"]  # no remote link sent during the pause
    with engine.connect() as conn:
        row = conn.execute(select(Delivery)).one()
    assert row.status == "queued" and row.attempts == 0  # waiting is not a failed attempt


def test_a_sync_that_lost_its_claim_writes_nothing_more(engine, worker, jira):
    deliver(engine, load_fixture("same_second_comment_added"))
    take_over = update(Delivery).values(claimed_by="other-worker")
    jira.before["create_issue"] = lambda: _run(engine, take_over)
    worker.run_once()
    assert [m for m, _ in jira.writes()] == ["create_issue"]  # no link, no transition, no comment
    with engine.connect() as conn:
        row = conn.execute(select(Delivery)).one()
    assert row.status == "processing" and row.claimed_by == "other-worker"  # left alone


def _run(engine, statement) -> None:
    with engine.begin() as conn:
        conn.execute(statement)


def test_a_comment_post_that_may_still_land_is_not_posted_again_yet(engine, worker, jira):
    deliver(engine, load_fixture("same_second_comment_added"))
    jira.lose_answer.add("add_comment")
    jira.comments_visible = False  # Jira has not shown the slow post yet
    drain(worker)
    (issue,) = jira.issues.values()
    assert len(issue.comments) == 1 and statuses(engine) == ["queued"]
    jira.comments_visible = True
    drain(worker)
    assert len(issue.comments) == 1 and statuses(engine) == ["done"]


def test_an_edit_whose_answer_was_lost_is_not_repeated_before_it_can_land(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    deliver(engine, {**load_fixture("nc_created"), "eventType": "nc.updated", "title": "Renamed",
                     "timestamp": "2025-02-02T08:00:00Z"})
    jira.lose_answer.add("update_issue")
    worker.run_once()
    with engine.connect() as conn:
        row = conn.execute(select(Delivery).order_by(Delivery.id.desc())).first()
    assert row.status == "queued" and row.next_attempt_at > utcnow() + timedelta(seconds=50)


def test_each_delivery_has_its_own_retry_budget(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    with engine.begin() as conn:
        conn.execute(update(Delivery).values(attempts=2))  # one attempt left
    deliver(engine, {**load_fixture("nc_created"), "eventType": "nc.updated", "title": "Later",
                     "timestamp": "2025-02-02T08:00:00Z"})
    jira.fail_next["find_issues_by_label"] = [JiraError("down", status=503, retryable=True)]
    worker.run_once()
    assert statuses(engine) == ["dead", "queued"]


def test_a_dead_letter_replayed_after_newer_events_still_applies_what_they_did_not_change(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    status_change = {**load_fixture("nc_created"), "eventType": "nc.status_changed", "status": "under_investigation",
                     "timestamp": "2025-02-02T08:00:00Z"}
    deliver(engine, status_change)
    jira.fail_next["update_issue"] = [JiraError("bad field", status=400, retryable=False)]
    drain(worker)
    assert statuses(engine) == ["done", "dead"]
    deliver(engine, {"eventType": "nc.updated", "ncId": "NCR-12", "timestamp": "2025-02-03T08:00:00Z",
                     "title": "Newer title"})
    drain(worker)
    queue.replay(engine, all_dead=True)
    drain(worker)
    (issue,) = jira.issues.values()
    assert issue.status == "In Progress" and issue.fields["summary"] == "[NCR-12] Newer title"


def test_a_sync_that_lost_its_claim_records_nothing_more(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    deliver(engine, {**load_fixture("nc_created"), "eventType": "nc.updated", "title": "Renamed",
                     "timestamp": "2025-02-02T08:00:00Z"})
    take_over = update(Delivery).where(Delivery.status == "processing").values(claimed_by="other-worker")
    jira.before["upsert_remote_link"] = lambda: _run(engine, take_over)  # another worker took the NC over
    before = links.get(engine, "NCR-12")
    worker.run_once()
    after = links.get(engine, "NCR-12")
    assert after.fields_hash != before.fields_hash  # the edit, made while the claim was ours, is recorded
    assert after.remote_link_hash == before.remote_link_hash  # the link, sent after the take-over, is not
    assert jira.writes()[-1][0] == "upsert_remote_link"  # and nothing was sent after it
    assert statuses(engine) == ["done", "processing"]


def test_the_resolvers_jira_lookups_wait_out_a_retry_after_too(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))  # its owner's account is looked up in Jira
    claim = queue.claim_next(engine, "w1", 60)
    throttles.pause(engine, "jira", 30)  # another worker was answered 429 meanwhile
    with pytest.raises(RetryLater) as caught:
        worker.syncer.sync(claim)
    assert caught.value.count_attempt is False and 25 < caught.value.delay <= 30
    assert jira.calls == []


def test_near_limit_during_a_sync_turns_careful_mode_on_and_the_sync_goes_on(engine, worker, jira):
    deliver(engine, load_fixture("nc_created"))
    jira.pressure_on["create_issue"] = Pressure(status=201, near_limit=True, remaining=3)
    drain(worker)
    assert [m for m, _ in jira.writes()] == ["create_issue", "upsert_remote_link"]  # the link: under the lock
    assert statuses(engine) == ["done"] and throttles.throttled(engine, CAREFUL)[CAREFUL] > 25


class BusyLock:
    """A careful-mode lock that another worker never lets go of."""

    @contextmanager
    def hold(self) -> Iterator[None]:
        raise LockBusy("the Jira call lock was not free within 30s")
        yield  # pragma: no cover

    def close(self) -> None:
        return None


def test_a_lock_that_stays_taken_is_a_retry_that_costs_no_attempt(engine, db_url, jira):
    settings = make_settings(db_url, NC_CONNECTOR_MAX_ATTEMPTS="3")
    mapping = load_mapping(default_mapping_path(), project_override="QA")
    syncer = Syncer(engine, jira, mapping, settings.jira_search_lag, throttle=JiraThrottle(engine, BusyLock()))
    deliver(engine, load_fixture("nc_created"))
    throttles.pause(engine, CAREFUL, 30)
    Worker(engine, settings, syncer).run_once()
    with engine.connect() as conn:
        row = conn.execute(select(Delivery)).one()
    assert row.status == "queued" and row.attempts == 0 and "not free" in row.last_error
    assert jira.calls == []


def test_several_issues_with_one_marker_label_are_said_loudly(engine, worker, jira, db_url, caplog):
    from click.testing import CliRunner

    from connector.ops.cli import main

    first = jira.create_issue({"summary": "made by hand", "labels": ["qualio-nc-NCR-12"]})
    second = jira.create_issue({"summary": "a copy", "labels": ["qualio-nc-NCR-12"]})
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    assert links.get(engine, "NCR-12").jira_key == first and len(jira.issues) == 2
    assert any(r.levelname == "ERROR" and "several Jira issues" in r.getMessage() for r in caplog.records)
    status = CliRunner().invoke(main, ["status"], env={"NC_CONNECTOR_DATABASE_URL": db_url})
    assert f"SEVERAL ISSUES carry the label of NCR-12: linked to one, also {second}" in status.output


def test_a_lost_create_the_search_never_shows_is_found_by_reading_its_key(engine, worker, jira):
    """Jira Cloud's search has no bounded lag: past the search-lag window the next keys are read one by one."""
    jira.create_issue({"summary": "someone else's", "labels": []})  # QA-1, indexed
    deliver(engine, load_fixture("nc_created"))
    jira.lose_answer.add("create_issue")
    drain(worker, rounds=1)  # created QA-2, the answer lost
    jira.search_visible = False  # and the index never catches up
    with engine.begin() as conn:
        conn.execute(update(NcLink).values(create_started_at=utcnow() - timedelta(seconds=61)))
    drain(worker)
    assert sorted(jira.issues) == ["QA-1", "QA-2"] and links.get(engine, "NCR-12").jira_key == "QA-2"
    assert statuses(engine) == ["done"]
    assert ("issue_labels", "QA-1") in jira.calls and ("issue_labels", "QA-2") in jira.calls


@pytest.mark.parametrize(("keeps_properties", "mangles_text"), [(True, True), (False, False)])
def test_a_lost_comment_is_found_by_its_property_or_else_by_its_marker(engine, worker, jira, keeps_properties,
                                                                         mangles_text):
    """Cloud's v2 bodies round-trip through ADF, where `[qualio-comment:…]` is link syntax: the property finds
    the comment whatever became of its text; a Jira that drops properties still has the marker line."""
    jira.keeps_comment_properties = keeps_properties
    deliver(engine, load_fixture("same_second_comment_added"))
    jira.lose_answer.add("add_comment")
    drain(worker, rounds=1)
    (issue,) = jira.issues.values()
    if mangles_text:
        comment_id, body = issue.comments[0]
        issue.comments[0] = (comment_id, body.replace("[qualio-comment:", "[qualio-comment|"))
    with engine.begin() as conn:  # the search lag has passed
        conn.execute(update(CommentLink).values(created_at=utcnow() - timedelta(seconds=61)))
    drain(worker)
    assert len(issue.comments) == 1 and statuses(engine) == ["done"]
