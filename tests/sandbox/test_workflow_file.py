"""A workflow from a JSON file (--workflow FILE), its checks at start-up, the --workflow and
--ignore-issue-expand options, and a workflow served over HTTP to the `jira` client."""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from jira import JIRA

from connector.sandbox import SandboxConfig, add_arguments, options_from_args, start_in_thread
from tests.sandbox.conftest import EMAIL, TOKEN, V2, V3, Json, assert_error, assert_response, call, create

MakeClient = Callable[..., FlaskClient]
SHIPPING: Json = {
    "statuses": [{"id": "1", "name": "New", "category": "new"},
                 {"id": "2", "name": "Doing", "category": "indeterminate", "description": "Being built."},
                 {"id": "3", "name": "Shipped", "category": "done"}],
    "initial": "1",
    "transitions": [
        {"id": "100", "name": "Start", "to": "2", "from": ["1"]},
        {"id": "200", "name": "Ship", "to": "3", "from": ["2"],
         "screen": {"resolution": {"required": True}, "assignee": {"required": False}}},
        {"id": "900", "name": "Back to new", "to": "1", "from": []},
    ],
    "resolutions": ["Shipped OK", "Scrapped"],
}


def write(tmp_path: Path, document: Any, raw: str | None = None) -> str:
    path = tmp_path / "workflow.json"
    path.write_text(raw if raw is not None else json.dumps(document), encoding="utf-8")
    return str(path)


def transitions(client: FlaskClient, key: str) -> list[Json]:
    body = assert_response(call(client, "GET", f"{V2}/issue/{key}/transitions?expand=transitions.fields"),
                           f"{V3}/issue/{{issueIdOrKey}}/transitions", 200)
    listed: list[Json] = body["transitions"]
    return listed


def test_a_workflow_file_is_served(make_client: MakeClient, tmp_path: Path) -> None:
    client = make_client(workflow=write(tmp_path, SHIPPING))
    statuses = call(client, "GET", f"{V2}/status").get_json()
    assert [(s["id"], s["name"], s["statusCategory"]["key"]) for s in statuses] == [
        ("1", "New", "new"), ("2", "Doing", "indeterminate"), ("3", "Shipped", "done")]
    assert [(r["id"], r["name"]) for r in call(client, "GET", f"{V2}/resolution").get_json()] == [
        ("10000", "Shipped OK"), ("10001", "Scrapped")]
    key = create(client)
    assert [t["name"] for t in transitions(client, key)] == ["Start"]  # a global one not to its own status
    assert call(client, "POST", f"{V2}/issue/{key}/transitions", {"transition": {"id": "100"}}).status_code == 204
    listed = transitions(client, key)
    assert [(t["id"], t["isGlobal"], t["hasScreen"]) for t in listed] == [("200", False, True), ("900", True, False)]
    ship = listed[0]["fields"]
    assert {f: m["required"] for f, m in ship.items()} == {"resolution": True, "assignee": False}
    assert [v["name"] for v in ship["resolution"]["allowedValues"]] == ["Shipped OK", "Scrapped"]
    assert "allowedValues" not in ship["assignee"] and ship["assignee"]["schema"]["type"] == "user"
    body: Json = {"transition": {"id": "200"}, "fields": {"assignee": {"name": "dana"}}}
    assert assert_error(call(client, "POST", f"{V2}/issue/{key}/transitions", body), 400)["errors"] == {
        "resolution": "Resolution is required."}
    body["fields"]["resolution"] = {"name": "Scrapped"}
    assert call(client, "POST", f"{V2}/issue/{key}/transitions", body).status_code == 204
    fields = call(client, "GET", f"{V2}/issue/{key}").get_json()["fields"]
    assert (fields["status"]["name"], fields["resolution"]["name"], fields["assignee"]["name"]) == (
        "Shipped", "Scrapped", "dana")


def broken(change: Callable[[Json], None]) -> Json:
    document = copy.deepcopy(SHIPPING)
    change(document)
    return document


PROBLEMS: list[tuple[Any, str]] = [
    (["not", "an", "object"], "expected a JSON object"),
    (broken(lambda d: d.pop("statuses")), "'statuses' must be a non-empty list"),
    (broken(lambda d: d.update(statuses=[])), "'statuses' must be a non-empty list"),
    (broken(lambda d: d["statuses"][1].update(category="doing")), "statuses[1] (Doing): category must be one of"),
    (broken(lambda d: d["statuses"][2].update(id="1")), "statuses[2]: status 'Shipped' (id '1') repeats"),
    (broken(lambda d: d["statuses"][2].update(name="new")), "repeats the id or name of status 'New'"),
    (broken(lambda d: d["statuses"][0].pop("name")), "statuses[0]: 'name' must be a non-empty string"),
    (broken(lambda d: d["statuses"][2].update(category="indeterminate")), "no status has category 'done'"),
    (broken(lambda d: d.pop("initial")), "'initial' (the id of the status new issues start in) is missing"),
    (broken(lambda d: d.update(initial="9")), "initial status '9' is not one of the statuses (1, 2, 3)"),
    (broken(lambda d: d.update(transition=[])), "the workflow: unknown key(s) 'transition'"),
    (broken(lambda d: d["transitions"][0].update(to="9")), "transitions[0] (Start): status '9' is not one of"),
    (broken(lambda d: d["transitions"][0].update({"from": ["1", "7"]})), "status '7' is not one of"),
    (broken(lambda d: d["transitions"][0].update({"from": "1"})), "'from' must be a list of status ids"),
    (broken(lambda d: d["transitions"][2].update(id="100")), "transition id '100' is used twice"),
    (broken(lambda d: d["transitions"][1]["screen"].update(status={})), "field 'status' cannot be on a transition"),
    (broken(lambda d: d["transitions"][1]["screen"].update(assignee={"required": "yes"})),
     "screen field 'assignee': 'required' must be true or false"),
    (broken(lambda d: d["transitions"][1]["screen"].update(assignee={"mandatory": True})), "unknown key(s)"),
    (broken(lambda d: d.update(resolutions=[])), "has 'resolution' but the workflow has no resolutions"),
    (broken(lambda d: d.update(resolutions=["Done", "done"])), "'resolutions' lists a name twice"),
    (broken(lambda d: d.update(resolutions="Done")), "'resolutions' must be a list of resolution names"),
]


@pytest.mark.parametrize(("document", "problem"), PROBLEMS)
def test_a_bad_workflow_file_is_refused_naming_the_problem(tmp_path: Path, document: Any, problem: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(ValueError) as raised:
        SandboxConfig(workflow=path)
    assert f"workflow file {path}: " in str(raised.value) and problem in str(raised.value)


def test_unreadable_or_unknown_workflows_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        SandboxConfig(workflow=write(tmp_path, None, raw="{\"statuses\": ["))
    with pytest.raises(ValueError, match=r"one of review, cloud, classic, gated or a JSON file, not 'kanban'"):
        SandboxConfig(workflow="kanban")
    assert SandboxConfig(workflow=write(tmp_path, broken(lambda d: d.pop("resolutions")))).definition.resolutions


def test_the_workflow_options_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = options_from_args(parser.parse_args([]))
    assert (defaults["workflow"], defaults["ignore_issue_expand"]) == ("review", False)
    options = options_from_args(parser.parse_args(["--workflow", "classic", "--ignore-issue-expand"]))
    assert (options["workflow"], options["ignore_issue_expand"]) == ("classic", True)
    config = SandboxConfig(**{k: v for k, v in options.items() if k != "quiet"})
    assert (config.definition.name, config.ignore_issue_expand) == ("classic", True)
    path = write(tmp_path, SHIPPING)
    assert options_from_args(parser.parse_args(["--workflow", path]))["workflow"] == path
    with pytest.raises(SystemExit):
        parser.parse_args(["--workflow", write(tmp_path, broken(lambda d: d.update(initial="9")))])
    assert "initial status '9' is not one of the statuses" in capsys.readouterr().err


def test_the_jira_client_resolves_an_issue_in_the_classic_workflow() -> None:
    with start_in_thread(workflow="classic") as sandbox:
        jira = JIRA(sandbox.url, basic_auth=(EMAIL, TOKEN), timeout=5, max_retries=1)
        try:
            issue = jira.create_issue(project="QA", issuetype="Task", summary="Seal wear")
            assert issue.fields.status.name == "Open"
            assert [t["name"] for t in jira.transitions(issue)] == ["Start Progress", "Resolve Issue", "Close Issue"]
            jira.transition_issue(issue, "Resolve Issue", fields={"resolution": {"name": "Fixed"}})
            fields = jira.issue(issue.key, fields="status,resolution").raw["fields"]
            assert (fields["status"]["name"], fields["resolution"]["name"]) == ("Resolved", "Fixed")
        finally:
            jira.close()  # type: ignore[no-untyped-call]
