"""Faults that belong to everyone, not to one NC: credentials and permissions refused pause every worker and
cost no attempt; an outage shorter than the retry span buries nothing; a mapping that fails on a value parks
that NC alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from connector import throttles
from connector.clock import utcnow
from connector.jira.gateway import FieldInfo, JiraError
from connector.mapping.load import load_mapping
from connector.models import Delivery
from connector.ops.app import create_app
from connector.ops.cli import main
from connector.sync.apply import Syncer
from connector.sync.worker import Worker
from tests.conftest import load_fixture, make_settings
from tests.sync.helpers import dead_letters, deliver, drain, statuses

UNAUTHORIZED = JiraError("Client must be authenticated to access this resource.", status=401)
FORBIDDEN = JiraError("You do not have the permission to see the specified issue.", status=403)


def nc(number: int) -> dict:
    return {**load_fixture("nc_created"), "ncId": f"NC-2026-{number:03d}", "title": f"NC {number}"}


def end_pause(engine) -> None:
    """Let the pause run out now (the probe is due), as time would."""
    with engine.begin() as conn:
        conn.execute(update(throttles.Throttle).values(not_before=utcnow() - timedelta(seconds=1)))


def attempts(engine) -> list[int]:
    with engine.connect() as conn:
        return [a for (a,) in conn.execute(select(Delivery.attempts).order_by(Delivery.id))]


def test_credentials_refused_pause_every_worker_cost_no_attempt_and_resume_by_themselves(engine, jira, db_url):
    settings = make_settings(db_url, NC_CONNECTOR_RETRY_BASE="10s")  # the first pause 10 s, then 20 s, ...
    worker = Worker(engine, settings, Syncer(engine, jira, _mapping(), settings.jira_search_lag))
    for number in range(3):
        deliver(engine, nc(number))
    jira.fail_next["find_issues_by_label"] = [UNAUTHORIZED, UNAUTHORIZED]  # the token expired
    assert worker.run_once() is True
    fault = throttles.fault(engine)
    assert fault is not None and "credentials (401)" in fault.reason and fault.strikes == 1
    calls = len(jira.calls)
    assert worker.run_once() is False and len(jira.calls) == calls  # paused: no claim, no call
    other = Worker(engine, worker.settings, worker.syncer)
    assert other.run_once() is False  # every worker, not just the one that met it
    end_pause(engine)
    worker.run_once()  # the probe fails too: the wait doubles
    assert throttles.fault(engine).strikes == 2
    assert 15 < throttles.paused_for(engine, throttles.INSTALLATION) <= 20
    status = CliRunner().invoke(main, ["status"], env={"NC_CONNECTOR_DATABASE_URL": db_url})
    assert "PAUSED (a fault of the installation, 2 failed probe(s)): Jira refused the connector's credentials" \
        in status.output
    ready = create_app(make_settings(db_url)).test_client().get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "degraded" and "401" in ready.json["reason"]
    end_pause(engine)
    drain(worker)  # the credential works again: the probe goes through and clears the fault
    assert throttles.fault(engine) is None and statuses(engine) == ["done"] * 3
    assert attempts(engine) == [0, 0, 0] and dead_letters(engine) == []
    metrics = create_app(make_settings(db_url)).test_client().get("/metrics").get_data(as_text=True)
    assert "nc_connector_installation_fault 0.0" in metrics


def test_a_403_with_the_permissions_gone_is_the_installations_a_403_on_one_issue_is_that_ncs(engine, worker, jira):
    deliver(engine, nc(1))
    jira.fail_next["find_issues_by_label"] = [FORBIDDEN]
    jira.missing_permissions = ["the Jira user lacks the CREATE_ISSUES permission in project 'QA'"]
    worker.run_once()
    fault = throttles.fault(engine)
    assert fault is not None and "CREATE_ISSUES" in fault.reason and dead_letters(engine) == []
    throttles.clear_fault(engine)
    jira.missing_permissions = []
    jira.fail_next["find_issues_by_label"] = [FORBIDDEN]  # the permissions are fine: this NC's own problem
    drain(worker)
    (dead,) = dead_letters(engine)
    assert "403" in dead.last_error and throttles.fault(engine) is None


def test_an_outage_shorter_than_the_retry_span_buries_nothing(engine, db_url, jira):
    """20 minutes of Jira 503s (attempts far past the count) inside a span of an hour: no dead letter."""
    settings = make_settings(db_url, NC_CONNECTOR_MAX_ATTEMPTS="3", NC_CONNECTOR_RETRY_SPAN="1h",
                             NC_CONNECTOR_RETRY_BASE="0.01s")
    worker = Worker(engine, settings, Syncer(engine, jira, _mapping(), settings.jira_search_lag))
    deliver(engine, nc(1))
    outage = JiraError("Service Unavailable", status=503, retryable=True)  # no Retry-After: attempts count
    jira.fail_next["find_issues_by_label"] = [outage] * 10
    with engine.begin() as conn:  # received 20 minutes ago, when the outage began
        conn.execute(update(Delivery).values(received_at=utcnow() - timedelta(minutes=20)))
    drain(worker, rounds=10)
    assert attempts(engine) == [10] and dead_letters(engine) == []
    drain(worker)
    assert statuses(engine) == ["done"]
    # Past the span, the same failures bury it.
    deliver(engine, nc(2))
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.nc_id == "NC-2026-002")
                     .values(received_at=utcnow() - timedelta(hours=2)))
    jira.fail_next["find_issues_by_label"] = [outage] * 3
    drain(worker)
    (dead,) = dead_letters(engine)
    assert dead.nc_id == "NC-2026-002" and dead.attempts == 3


def test_a_mapping_that_fails_on_a_value_parks_that_nc_at_once_and_the_rest_flow(engine, db_url, jira, tmp_path):
    text = (_mapping_path().read_text(encoding="utf-8")
            .replace('template = "[{{ nc.ncId }}] {{ nc.title | default(\'Qualio non-conformance\', true) }}"',
                     'template = "[{{ nc.ncId }}] {{ nc.title }} {{ nc.lots | join(\'+\') }}"')
            .replace("extra_nc_keys = []", 'extra_nc_keys = ["lots"]'))
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    settings = make_settings(db_url, NC_CONNECTOR_MAX_ATTEMPTS="10")
    worker = Worker(engine, settings, Syncer(engine, jira, load_mapping(path, "QA"), settings.jira_search_lag))
    deliver(engine, {**nc(1), "lots": 7731})  # join() of a number fails, on this NC's value only
    deliver(engine, {**nc(2), "lots": ["7731", "7732"]})
    drain(worker)
    (dead,) = dead_letters(engine)
    assert dead.nc_id == "NC-2026-001" and dead.attempts == 1 and dead.failed_step == "mapping"
    assert "the mapping cannot render this NC" in dead.last_error
    assert [i.fields["summary"] for i in jira.issues.values()] == ["[NC-2026-002] NC 2 7731+7732"]


def test_an_interrupted_first_sync_leaves_state_a_later_delivery_can_build_on(engine, db_url, jira):
    """The example-rich mapping reads nc.ncId in every template: the state it needs is recorded first."""
    settings = make_settings(db_url, NC_CONNECTOR_MAX_ATTEMPTS="5", NC_CONNECTOR_RETRY_BASE="0.01s")
    rich = load_mapping(_mapping_path().parent / "example-rich.toml", "QA")
    worker = Worker(engine, settings, Syncer(engine, jira, rich, settings.jira_search_lag))
    jira.field_list += [FieldInfo("customfield_10011", "Risk score", "number", None),
                        FieldInfo("customfield_10012", "Reported at", "datetime", None)]
    deliver(engine, nc(1))
    jira.fail_next["upsert_remote_link"] = [JiraError("read timed out", retryable=True)]  # after the create
    worker.run_once()
    deliver(engine, {"eventType": "nc.updated", "ncId": "NC-2026-001", "timestamp": "2025-03-01T00:00:00Z"})
    drain(worker)
    # Only the rich mapping's own statuses ("Open", ...) are missing from this workflow; no "has no ncId".
    assert {d.failed_step for d in dead_letters(engine)} == {"transition"}
    assert not any("ncId" in d.last_error for d in dead_letters(engine))
    (issue,) = jira.issues.values()
    assert "NC-2026-001" in issue.fields["summary"]


def _mapping_path():
    from connector.mapping.load import default_mapping_path

    return default_mapping_path()


def _mapping():
    return load_mapping(_mapping_path(), "QA")


def test_qualios_key_refused_pauses_every_worker_too(engine, jira, db_url):
    from connector.sync.errors import InstallationFault

    settings = make_settings(db_url, NC_CONNECTOR_RETRY_BASE="10s")
    worker = Worker(engine, settings, Syncer(engine, jira, _mapping(), settings.jira_search_lag))

    class RefusedKey:
        def fetch(self, nc_id: str, attempt: int = 1) -> dict:
            raise InstallationFault("Qualio refused the API key (403): explicit deny")

    worker.syncer.enricher = RefusedKey()
    deliver(engine, nc(1))
    worker.run_once()
    assert "Qualio refused the API key" in throttles.fault(engine).reason
    assert attempts(engine) == [0] and jira.writes() == [] and worker.run_once() is False


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite lives on one host: its clock
def test_pauses_and_leases_follow_the_database_clock_not_this_hosts(engine, db_url, monkeypatch):
    """On PostgreSQL a host whose clock is an hour fast still sees a 30 s pause as 30 s and a 60 s lease as 60 s."""
    fast = utcnow() + timedelta(hours=1)
    monkeypatch.setattr("connector.throttles.utcnow", lambda: fast)
    monkeypatch.setattr("connector.sync.queue.utcnow", lambda: fast)
    throttles.pause(engine, "jira", 30)
    assert 25 < throttles.paused_for(engine, "jira") <= 30
    deliver(engine, nc(1))
    from connector.sync import queue

    claim = queue.claim_next(engine, "w1", 60)
    with engine.connect() as conn:
        lease = conn.execute(select(Delivery.lease_expires_at)).scalar_one()
    assert abs((lease - utcnow()).total_seconds() - 60) < 5  # not an hour and a minute away
    assert queue.renew(engine, claim, 60)
