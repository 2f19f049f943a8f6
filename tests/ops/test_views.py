"""Operator commands: status, deliveries, dead letters, replay, mappings check; clear output and exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from connector.clock import utcnow
from connector.models import Delivery
from connector.ops.cli import main
from connector.receive.events import validate_event
from connector.receive.fingerprint import fingerprint
from connector.receive.store import record_delivery
from tests.conftest import FIXTURES, load_fixture


@pytest.fixture
def cli(db_url):
    def run(*args: str, **env: str):
        return CliRunner().invoke(main, list(args), env={"NC_CONNECTOR_DATABASE_URL": db_url, **env})
    return run


def store(engine, name: str) -> None:
    payload = load_fixture(name)
    record_delivery(engine, validate_event(payload), json.dumps(payload).encode(), fingerprint(payload), None)


def test_status_and_listing(engine, cli):
    store(engine, "nc_created")
    store(engine, "seed_nc_updated")
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id == 1)
                     .values(status="dead", last_error="Jira refused (400): priority: bad", finished_at=utcnow()))
    status = cli("status")
    assert status.exit_code == 0
    assert "queued:       1" in status.output and "dead letters: 1" in status.output
    listed = cli("deliveries", "list", "--nc", "NCR-12")
    assert listed.exit_code == 0 and "NCR-12" in listed.output and "NC-2025-001" not in listed.output
    dead = cli("dead-letters")
    assert "priority: bad" in dead.output and "NC-2025-001" not in dead.output
    shown = cli("deliveries", "show", "1")
    assert shown.exit_code == 0 and '"ncId": "NCR-12"' in shown.output and "last_error" in shown.output
    assert cli("deliveries", "show", "999").exit_code == 2


def test_replay(engine, cli):
    store(engine, "nc_created")
    with engine.begin() as conn:
        conn.execute(update(Delivery).values(status="dead", attempts=10))
    assert cli("replay").exit_code == 2  # neither ids nor --all-dead
    missing = cli("replay", "1", "2")
    assert missing.exit_code == 1 and "re-queued 1" in missing.output
    assert "re-queued 0" in cli("replay", "--all-dead").output


def test_mappings_check_prints_the_fields(cli):
    result = cli("mappings", "check", "--payload", str(FIXTURES / "nc_created.json"), NC_CONNECTOR_JIRA_PROJECT="QA")
    assert result.exit_code == 0, result.output
    assert '"summary": "[NCR-12] Non Compliance: procedure was not followed"' in result.output
    assert "target status: category 'new' (To Do)" in result.output


def test_mappings_check_reports_a_broken_file(cli, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text('schema_version = 1\n[fields.summary]\ntemplate = "{{ nc.titel }}"\n'
                      '[fields.colour]\nvalue = 1\nx = 2\n')
    result = cli("mappings", "check", str(broken))
    assert result.exit_code == 1
    assert "broken.toml" in result.output and "fields.summary" in result.output and "fields.colour" in result.output


def test_mappings_check_bad_payload_exits_2(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"ncId": 1}')
    result = cli("mappings", "check", "--payload", str(bad))
    assert result.exit_code == 2 and "eventType" in result.output


def test_mappings_check_live_names_a_required_screen_field_the_mapping_cannot_fill(tmp_path):
    from connector.ops.views import check_mapping
    from connector.sandbox import start_in_thread
    from tests.conftest import make_settings

    workflow = {"statuses": [{"id": "1", "name": "Open", "category": "new"},
                             {"id": "2", "name": "Fixed", "category": "done"}],
                "initial": "1",
                "transitions": [{"id": "11", "name": "Fix", "to": "2", "from": ["1"],
                                 "screen": {"resolution": {"required": True},
                                            "customfield_10012": {"required": True}}},
                                {"id": "21", "name": "Reopen", "to": "1", "from": ["2"]}]}
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(workflow), encoding="utf-8")
    with start_in_thread(workflow=str(path)) as sandbox:
        settings = make_settings("sqlite:///unused.db", NC_CONNECTOR_JIRA_URL=sandbox.url,
                                 NC_CONNECTOR_JIRA_PAT="sandbox-pat", NC_CONNECTOR_JIRA_PROJECT="QA")
        assert check_mapping(settings, None, None, live=True)[1] == []  # no issue yet: nothing to look at
        sandbox.state.create_issue({"project": {"key": "QA"}, "issuetype": {"name": "Task"}, "summary": "x"},
                                   "sandbox")
        _, problems = check_mapping(settings, None, None, live=True)
    assert problems == ["transition 'Fix' (from 'Open', seen on QA-1) requires Root cause (customfield_10012), "
                        "which the mapping does not fill: a sync through it fails unless the issue has a value"]
