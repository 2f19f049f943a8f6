"""The steps of a sync are independent and recorded as each completes: a failed step never costs the others,
an older delivery never wins, a replay re-runs only what is missing; issues deleted or moved by a person."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from connector.jira.gateway import JiraError, ScreenField
from connector.mapping.load import load_mapping
from connector.ops.cli import main
from connector.sync import links, queue
from connector.sync.apply import Syncer
from connector.sync.worker import Worker
from tests.conftest import load_fixture, make_settings
from tests.fake_jira import WORKFLOW, FakeIssue, FakeJira
from tests.sync.helpers import dead_letters, deliver, drain, statuses

NC = "NCR-12"


def update(title: str, timestamp: str, **extra: Any) -> dict[str, Any]:
    return {**load_fixture("nc_created"), "eventType": "nc.updated", "title": title, "timestamp": timestamp, **extra}


def created(engine, worker, jira: FakeJira) -> FakeIssue:
    deliver(engine, load_fixture("nc_created"))
    drain(worker)
    (issue,) = jira.issues.values()
    return issue


COMMENT = {"id": "c-1", "author": "dana@example.com", "createdAt": "2025-02-03T09:00:00Z", "body": "Root cause found."}


def test_a_transition_refused_for_good_costs_only_itself(engine, worker, jira):
    issue = created(engine, worker, jira)
    jira.workflow = {**WORKFLOW, "To Do": []}  # nothing leaves To Do in this project
    deliver(engine, update("Renamed", "2025-02-03T09:00:00Z", status="under_investigation",
                           eventType="nc.comment_added", comment=COMMENT))
    drain(worker)
    (dead,) = dead_letters(engine)
    assert dead.failed_step == "transition"
    assert "no transition leads from 'To Do' to category 'indeterminate'" in dead.last_error
    assert "(applied: edit, remote link, comment 'c-1')" in dead.last_error
    assert issue.fields["summary"] == "[NCR-12] Renamed" and len(issue.comments) == 1  # both still happened

    deliver(engine, update("Older title", "2025-02-02T09:00:00Z"))  # older than what was applied
    drain(worker)
    assert issue.fields["summary"] == "[NCR-12] Renamed"

    jira.workflow = dict(WORKFLOW)  # the workflow is fixed; the replay does only what is missing
    before = len(jira.writes())
    assert len(dead_letters(engine)) == 2 and queue.replay(engine, all_dead=True) == 2
    drain(worker)
    assert jira.writes()[before:] == [("transition_issue", issue.key)]
    assert issue.status == "In Progress" and len(issue.comments) == 1
    assert set(statuses(engine)) == {"done"}


def test_a_field_jira_refuses_leaves_the_others_applied(engine, worker, jira):
    issue = created(engine, worker, jira)
    refused = JiraError("priority: Field 'priority' cannot be set.", status=400,
                        field_errors={"priority": "Field 'priority' cannot be set."})
    jira.fail_next["update_issue"] = [refused]
    deliver(engine, update("Renamed", "2025-02-03T09:00:00Z", severity="critical"))
    drain(worker)
    (dead,) = dead_letters(engine)
    assert dead.failed_step == "edit" and "priority: Field 'priority' cannot be set." in dead.last_error
    assert issue.fields["summary"] == "[NCR-12] Renamed" and issue.fields["priority"] == {"name": "Low"}
    # Replayed once the screen has the field: the refused field goes out again (what Jira has differs).
    queue.replay(engine, all_dead=True)
    drain(worker)
    assert issue.fields["priority"] == {"name": "Highest"} and statuses(engine)[-1] == "done"


def test_a_refused_comment_does_not_stop_the_edit_or_the_other_comments(engine, worker, jira):
    issue = created(engine, worker, jira)
    jira.fail_next["add_comment"] = [JiraError("Comment body can not be empty!", status=400)]
    deliver(engine, {**update("Renamed", "2025-02-03T09:00:00Z"), "eventType": "nc.comment_added",
                     "comment": COMMENT})
    deliver(engine, {**update("Renamed", "2025-02-03T09:00:01Z"), "eventType": "nc.comment_added",
                     "comment": {**COMMENT, "id": "c-2", "body": "Fixed."}})
    drain(worker)
    assert [body.splitlines()[-1] for _, body in issue.comments] == ["[qualio-comment:c-2]"]
    assert issue.fields["summary"] == "[NCR-12] Renamed"
    assert all(d.failed_step == "comment" and "'c-1'" in d.last_error for d in dead_letters(engine))
    queue.replay(engine, all_dead=True)
    drain(worker)
    assert sorted(body.splitlines()[-1] for _, body in issue.comments) == ["[qualio-comment:c-1]",
                                                                          "[qualio-comment:c-2]"]


def test_the_resolution_screen_is_filled_and_a_field_it_cannot_fill_is_named(engine, worker, jira):
    issue = created(engine, worker, jira)
    resolution = ScreenField("resolution", "Resolution", required=True, has_default=False,
                             allowed=("Won't Do", "Fixed", "Duplicate"))
    jira.screens["31"] = (resolution,)
    deliver(engine, load_fixture("nc_closed"))
    drain(worker)
    assert issue.status == "Done" and jira.transition_fields[-1] == (issue.key, "31",
                                                                      {"resolution": {"name": "Fixed"}})
    # Reopened, then closed through a screen that also wants a field the mapping does not fill.
    deliver(engine, update("Again", "2025-02-11T09:00:00Z", status="open"))
    drain(worker)
    jira.screens["31"] = (resolution, ScreenField("customfield_10200", "Root cause", required=True,
                                                  has_default=False))
    deliver(engine, {**load_fixture("nc_closed"), "timestamp": "2025-02-12T09:00:00Z"})
    drain(worker)
    (dead,) = dead_letters(engine)
    assert dead.failed_step == "transition"
    assert "transition 'Done' on QA-1 needs Root cause (customfield_10200)" in dead.last_error


def test_reopening_transitions_before_the_edit(engine, worker, jira):
    issue = created(engine, worker, jira)
    deliver(engine, load_fixture("nc_closed"))
    drain(worker)
    jira.calls.clear()
    deliver(engine, update("Reopened and renamed", "2025-02-11T09:00:00Z", status="under_investigation"))
    drain(worker)
    writes = [m for m, _ in jira.writes() if m != "upsert_remote_link"]  # the title is in the link's too
    assert writes == ["transition_issue", "transition_issue", "update_issue"]  # Reopen, Start, then the edit
    assert issue.status == "In Progress" and issue.fields["summary"] == "[NCR-12] Reopened and renamed"


def test_a_thin_close_still_closes(engine, worker, jira):
    issue = created(engine, worker, jira)
    deliver(engine, {"eventType": "nc.closed", "ncId": NC, "timestamp": "2025-02-10T09:00:00Z"})
    drain(worker)
    assert issue.status == "Done"


def test_an_issue_moved_by_a_person_is_followed_and_its_new_key_recorded(engine, worker, jira):
    issue = created(engine, worker, jira)
    jira.move(issue.key, "OPS-7")  # the old key still answers, under the new one
    deliver(engine, load_fixture("nc_closed"))
    drain(worker)
    assert links.get(engine, NC).jira_key == "OPS-7" and issue.status == "Done"
    # Moved again, and this time the old key is gone: found by its label in another project.
    jira.issues["OPS-8"] = jira.issues.pop("OPS-7")
    jira.issues["OPS-8"].key = "OPS-8"
    deliver(engine, update("Renamed", "2025-02-11T09:00:00Z", status="closed"))
    drain(worker)
    assert links.get(engine, NC).jira_key == "OPS-8" and issue.fields["summary"] == "[NCR-12] Renamed"
    assert set(statuses(engine)) == {"done"} and len(jira.issues) == 1


def test_a_deleted_issue_is_a_dead_letter_saying_how_to_recover_and_unlink_then_replay_recreates_it(
        engine, worker, jira, db_url, monkeypatch):
    issue = created(engine, worker, jira)
    deliver(engine, {**update("Renamed", "2025-02-03T09:00:00Z"), "eventType": "nc.comment_added",
                     "comment": COMMENT})
    drain(worker)
    del jira.issues[issue.key]  # a person deleted it
    deliver(engine, update("Renamed again", "2025-02-04T09:00:00Z"))
    drain(worker)
    (dead,) = dead_letters(engine)
    assert dead.failed_step == "issue" and f"Jira issue {issue.key} of {NC} is gone" in dead.last_error
    assert f"nc-connector links unlink {NC}" in dead.last_error

    monkeypatch.setenv("NC_CONNECTOR_DATABASE_URL", db_url)
    result = CliRunner().invoke(main, ["links", "unlink", NC])
    assert result.exit_code == 0, result.output
    assert "re-queued its 3 stored deliveries" in result.output
    drain(worker)
    (new,) = jira.issues.values()
    assert new.key != issue.key and new.fields["summary"] == "[NCR-12] Renamed again"
    assert len(new.comments) == 1  # the NC's comment is posted again on the new issue
    assert links.get(engine, NC).jira_key == new.key


def test_links_commands_refuse_bad_input_with_exit_code_2(engine, worker, jira, db_url, monkeypatch):
    created(engine, worker, jira)
    monkeypatch.setenv("NC_CONNECTOR_DATABASE_URL", db_url)
    runner = CliRunner()
    assert runner.invoke(main, ["links", "relink", NC, "not a key"]).exit_code == 2
    assert runner.invoke(main, ["links", "unlink", "NC-0000-404"]).exit_code == 2
    deliver(engine, {**load_fixture("nc_created"), "ncId": "NCR-13"})
    drain(worker)
    taken = runner.invoke(main, ["links", "relink", NC, links.get(engine, "NCR-13").jira_key])
    assert taken.exit_code == 2 and "already linked to another NC" in taken.output
    moved = runner.invoke(main, ["links", "relink", NC, "OPS-12"])
    assert moved.exit_code == 0 and links.get(engine, NC).jira_key == "OPS-12"
    assert links.get(engine, NC).fields_hash is None  # its fields go to the new issue at the next sync


@pytest.fixture
def rich_worker(engine, db_url, jira):
    settings = make_settings(db_url, NC_CONNECTOR_MAX_ATTEMPTS="3", NC_CONNECTOR_RETRY_BASE="0.01s")
    from connector.mapping.load import default_mapping_path

    mapping = load_mapping(default_mapping_path().parent / "example-rich.toml", project_override="QA")
    return Worker(engine, settings, Syncer(engine, jira, mapping, settings.jira_search_lag))


class StaticEnricher:
    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def fetch(self, nc_id: str, attempt: int = 1) -> dict[str, Any]:
        return dict(self.record)


def test_enrichment_fills_but_never_overwrites_a_newer_delivery(engine, worker, jira):
    worker.syncer.enricher = StaticEnricher({
        "title": "Title in Qualio", "description": "", "qualioStatus": "open", "fields": {},
        "modifiedAt": "2025-02-01T09:00:00Z", "risk": "high"})
    deliver(engine, {**load_fixture("nc_created"), "timestamp": "2025-02-02T08:00:00Z",
                     "fields": {"Root cause": "firmware"}})
    drain(worker)
    state = links.get(engine, NC).nc_state
    assert state["title"] == "Non Compliance: procedure was not followed"  # the delivery is newer
    assert state["description"] == "Cleaning log for line 3 was not signed off."  # "" never wipes
    assert state["fields"] == {"Root cause": "firmware"}  # nor does an empty {}
    assert state["status"] == "open" and state["qualioStatus"] == "open" and state["risk"] == "high"
    worker.syncer.enricher = StaticEnricher({"title": "Renamed in Qualio", "modifiedAt": "2025-02-05T09:00:00Z"})
    deliver(engine, {"eventType": "nc.updated", "ncId": NC, "timestamp": "2025-02-04T08:00:00Z"})
    drain(worker)
    assert links.get(engine, NC).nc_state["title"] == "Renamed in Qualio"  # the record is newer now
