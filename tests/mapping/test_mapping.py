"""Mappings: loading and validating the TOML files, and rendering NC records into Jira fields (pure)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.jira.field_shapes import FieldInfo, ShapeError, shape
from connector.mapping.load import (
    SCHEMA_VERSION,
    Mapping,
    MappingError,
    comment_key,
    default_mapping_path,
    load_mapping,
    marker_label,
    remote_link,
    render_comment,
    render_fields,
    target_status,
)
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "mappings" / "default.toml"
RICH = ROOT / "mappings" / "example-rich.toml"
THIN = {"ncId": "NC-2025-001", "eventType": "nc.updated", "timestamp": "2025-01-05T10:15:32Z"}
COMMENT = {"id": "c-1001", "author": "dana@example.com", "createdAt": "2025-01-05T10:15:32Z",
           "body": "Root cause: firmware 2.3 on printer P-4."}
MINIMAL = 'schema_version = 1\n[fields.summary]\ntemplate = "{{ nc.title }}"\n'


class FakeResolver:
    """Jira's field list and user directory, as the sync engine's Jira-backed resolver would answer."""

    FIELDS = (
        FieldInfo("customfield_10010", "Severity", "option"),
        FieldInfo("customfield_10011", "Risk score", "number"),
        FieldInfo("customfield_10012", "Reported at", "datetime"),
        FieldInfo("customfield_10013", "QA approver", "user"),
    )

    def __init__(self) -> None:
        self.asked: list[str] = []

    def field(self, name_or_id: str) -> FieldInfo | None:
        self.asked.append(name_or_id)
        return next((f for f in self.FIELDS if name_or_id in (f.id, f.name)), None)

    def account_id(self, email: str) -> str | None:
        return {"dana@example.com": "acc-dana", "lee@example.com": "acc-lee"}.get(email)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def write(tmp_path: Path, text: str, name: str = "mapping.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Mapping:
    return load_mapping(write(tmp_path, text), project_override="QA")


def problems_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert all(line.startswith(f"{path}: ") for line in message.splitlines()), message
    return message


@pytest.fixture(scope="module")
def default() -> Mapping:
    return load_mapping(DEFAULT, project_override="QA")


@pytest.fixture(scope="module")
def rich() -> Mapping:
    return load_mapping(RICH)


# --- the shipped files ------------------------------------------------------------------------

def test_shipped_files_load() -> None:
    default = load_mapping(DEFAULT)
    assert default.project == "" and default.issue_type == "Task"
    assert default.marker_label == "qualio-nc-{nc_id}"
    assert load_mapping(RICH).project == "QA"
    assert SCHEMA_VERSION == 1


def test_default_mapping_path_is_the_shipped_default() -> None:
    path = default_mapping_path()
    assert path.name == "default.toml" and path.exists()
    assert path.read_text(encoding="utf-8") == DEFAULT.read_text(encoding="utf-8")


def undocumented_keys(path: Path) -> list[str]:
    """Key lines without a comment: above them, trailing them, or above their table header."""
    missing: list[str] = []
    seen: list[str] = []  # non-blank lines outside multi-line strings
    in_string = False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if in_string:
            in_string = stripped.count('"""') != 1
            continue
        if re.match(r'^[A-Za-z_"][^=#]*=', stripped):
            above = seen[-1] if seen else ""
            header_documented = above.startswith("[") and len(seen) > 1 and seen[-2].startswith("#")
            if not (above.startswith("#") or re.search(r"\s#\s", stripped) or header_documented):
                missing.append(stripped)
            in_string = stripped.count('"""') == 1
        if stripped:
            seen.append(stripped)
    return missing


@pytest.mark.parametrize("path", [DEFAULT, RICH], ids=["default", "rich"])
def test_shipped_files_document_every_key(path: Path) -> None:
    assert undocumented_keys(path) == []
    text = path.read_text(encoding="utf-8")
    assert "Required" in text and "Optional" in text


def test_project_override_wins() -> None:
    assert load_mapping(RICH, project_override="OPS").project == "OPS"
    assert load_mapping(RICH, project_override="  ").project == "QA"


# --- rendering with the default mapping ---------------------------------------------------------

def test_default_renders_a_full_record(default: Mapping) -> None:
    nc = fixture("nc_created.json")
    fields = render_fields(default, nc)
    assert fields["project"] == {"key": "QA"}
    assert fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "[NCR-12] Non Compliance: procedure was not followed"
    assert fields["description"].startswith("Cleaning log for line 3 was not signed off.\n\n----\n")
    assert "*Due:* 2025-02-15" in fields["description"]
    assert "*In Qualio:* [https://app.qualio.com/quality-events/events/123456]" in fields["description"]
    assert fields["labels"] == ["qualio", "non-conformance", "qualio-nc-NCR-12"]
    assert fields["priority"] == {"name": "Low"}
    assert fields["duedate"] == "2025-02-15"
    assert target_status(default, nc) == "To Do"
    assert remote_link(default, nc) == {
        "globalId": "qualio-nc:NCR-12",
        "object": {"url": "https://app.qualio.com/quality-events/events/123456",
                   "title": "Qualio NCR-12: Non Compliance: procedure was not followed"},
    }


def test_default_renders_a_thin_record_without_inventing_data(default: Mapping) -> None:
    fields = render_fields(default, THIN)
    assert fields["summary"] == "[NC-2025-001] Qualio non-conformance"
    assert "(no description in Qualio)" in fields["description"]
    assert "Owner" not in fields["description"] and "Due" not in fields["description"]
    assert fields["labels"] == ["qualio", "non-conformance", "qualio-nc-NC-2025-001"]
    # Missing data never overwrites Jira: no priority, no due date, status left alone, no link.
    assert "priority" not in fields and "duedate" not in fields
    assert target_status(default, THIN) is None
    assert remote_link(default, THIN) is None


def test_default_status_map(default: Mapping) -> None:
    def status(value: Any) -> str | None:
        return target_status(default, {**THIN, "status": value})

    assert status("open") == "To Do"
    assert status("under_investigation") == "In Progress"
    assert status("closed") == "Done"
    assert status("cancelled") == "Done"
    assert status("draft") is None  # not in the map, default "": leave the status alone
    assert status(None) is None


def test_priority_default_applies_only_to_unmapped_values(default: Mapping) -> None:
    def priority(**nc: Any) -> Any:
        return render_fields(default, {**THIN, **nc}).get("priority")

    assert priority(severity="critical") == {"name": "Highest"}
    assert priority(severity="catastrophic") == {"name": "Medium"}
    assert priority(severity=None) is None
    assert priority() is None


def test_default_comment(default: Mapping) -> None:
    nc = fixture("same_second_comment_added.json")
    text = render_comment(default, nc, nc["comment"])
    assert text == ("*dana@example.com* commented in Qualio (2025-01-05T10:15:32Z):\n\n"
                    "Root cause: firmware 2.3 on printer P-4.")
    assert render_comment(default, THIN, {"body": "Just text"}) == "*Someone* commented in Qualio:\n\nJust text"


def test_render_without_a_project_says_how_to_set_it() -> None:
    with pytest.raises(MappingError, match=r"issue\.project: .*NC_CONNECTOR_JIRA_PROJECT"):
        render_fields(load_mapping(DEFAULT), THIN)


# --- rendering with the rich example ------------------------------------------------------------

def test_rich_renders_every_field_shape(rich: Mapping) -> None:
    nc = fixture("mapping/nc_rich.json")
    resolver = FakeResolver()
    fields = render_fields(rich, nc, resolver)
    # Jira is asked only about names; Jira's own fields and ids with a declared type need no look-up.
    assert set(resolver.asked) == {"Severity", "Risk score", "Reported at"}
    assert fields["issuetype"] == {"name": "Bug"}
    assert fields["summary"] == "NC-2025-001 [CRITICAL] Label printer misprints lot numbers"
    assert "||Root cause|Firmware 2.3 on printer P-4|" in fields["description"]
    assert "||Site|Berlin|" in fields["description"]
    assert fields["labels"] == ["qualio", "non-conformance", "severity-critical", "audit", "customer", "line_2",
                                "qualio-nc-NC-2025-001"]
    assert fields["components"] == [{"name": "Quality"}, {"name": "Manufacturing"}]
    assert fields["priority"] == {"name": "P1"}
    assert fields["duedate"] == "2025-02-15"  # the date as Qualio wrote it, not shifted to UTC
    assert fields["assignee"] == {"accountId": "acc-dana"}
    assert fields["customfield_10010"] == {"value": "Critical"}  # by name, via the resolver
    assert fields["customfield_10042"] == "Firmware 2.3 on printer P-4"  # by id, declared type
    assert fields["customfield_10011"] == 7.5
    assert fields["customfield_10050"] == [{"value": "Audit finding"}, {"value": "Customer complaint"}]
    assert fields["customfield_10012"] == "2025-01-05T10:15:32.000+0100"
    assert target_status(rich, nc) == "Investigating"
    link = remote_link(rich, nc)
    assert link is not None and link["object"]["title"] == "Qualio NC-2025-001 (under_investigation)"


def test_rich_thin_record_and_built_link(rich: Mapping) -> None:
    fields = render_fields(rich, THIN, FakeResolver())
    assert fields["summary"] == "NC-2025-001 [UNRATED] Qualio non-conformance"
    assert not {"priority", "assignee", "duedate", "customfield_10010", "customfield_10042"} & set(fields)
    assert remote_link(rich, THIN) == {
        "globalId": "qualio-nc:NC-2025-001",
        "object": {"url": "https://app.qualio.com/quality-events/search?q=NC-2025-001",
                   "title": "Qualio NC-2025-001 (status unknown)"},
    }


def test_rich_comment_uses_extra_comment_keys(rich: Mapping) -> None:
    text = render_comment(rich, THIN, {**COMMENT, "authorName": "Dana Scully"})
    assert text == ("{quote}\nRoot cause: firmware 2.3 on printer P-4.\n{quote}\n"
                    "— Dana Scully in Qualio, 2025-01-05 (NC-2025-001)")


def test_assignee_falls_back_to_default_account(rich: Mapping, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        fields = render_fields(rich, {**THIN, "owner": "nobody@example.com"}, FakeResolver())
    assert fields["assignee"] == {"accountId": "5b10ac8d82e05b22cc7d4ef5"}
    assert "fields.assignee" in caplog.text and "nobody@example.com" not in caplog.text


def test_assignee_without_fallback_is_left_out(tmp_path: Path) -> None:
    mapping = load_text(tmp_path, MINIMAL + '[fields.assignee]\nfrom = "owner"\n')
    assert "assignee" not in render_fields(mapping, {**THIN, "owner": "nobody@example.com"}, FakeResolver())
    assert render_fields(mapping, {**THIN, "owner": "lee@example.com"}, FakeResolver())["assignee"] == {
        "accountId": "acc-lee"}
    assert "assignee" not in render_fields(mapping, {**THIN, "owner": "lee@example.com"})  # no resolver


def test_value_that_does_not_fit_is_left_out(rich: Mapping) -> None:
    nc = {**THIN, "fields": {"Risk score": "quite high"}}
    assert "customfield_10011" not in render_fields(rich, nc, FakeResolver())


def test_field_by_name_needs_a_resolver(rich: Mapping) -> None:
    with pytest.raises(MappingError, match=r'fields\.Severity: no Jira field named .*customfield_'):
        render_fields(rich, fixture("mapping/nc_rich.json"))


def test_resolver_may_answer_its_own_field_type(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class GatewayField:  # like the Jira gateway's FieldInfo: same attributes, another class
        id: str
        name: str
        schema_type: str
        items: str | None

    class GatewayResolver(FakeResolver):
        def field(self, name_or_id: str) -> GatewayField | None:  # type: ignore[override]
            return GatewayField("customfield_10099", "Areas", "array", "option") if name_or_id == "Areas" else None

    mapping = load_text(tmp_path, MINIMAL + '[fields.Areas]\nfrom = "tags"\n')
    fields = render_fields(mapping, {**THIN, "tags": ["a", "b"]}, GatewayResolver())
    assert fields["customfield_10099"] == [{"value": "a"}, {"value": "b"}]


def test_field_by_id_without_type_or_resolver_passes_the_value(tmp_path: Path) -> None:
    mapping = load_text(tmp_path, MINIMAL + '[fields.customfield_10077]\nfrom = "risk"\n')
    assert render_fields(mapping, {**THIN, "risk": "high"})["customfield_10077"] == "high"


def test_summary_is_one_line_and_at_most_255_utf16_units(default: Mapping) -> None:
    summary = render_fields(default, {**THIN, "title": "first\nsecond\r\n\tthird\x00"})["summary"]
    assert summary == "[NC-2025-001] first second third"
    long = render_fields(default, {**THIN, "title": "😀" * 300})["summary"]
    assert len(long.encode("utf-16-le")) // 2 <= 255 and long.endswith("…")


def test_description_is_cut_to_jira_limit(default: Mapping) -> None:
    description = render_fields(default, {**THIN, "description": "x" * 40000})["description"]
    assert len(description) == 32767


def test_remote_link_needs_an_http_url(default: Mapping) -> None:
    assert remote_link(default, {**THIN, "url": "javascript:alert(1)"}) is None
    assert remote_link(default, {**THIN, "url": "not a url"}) is None
    assert remote_link(default, {**THIN, "url": "HTTPS://qualio.example/x"}) is not None


# --- field shapes ------------------------------------------------------------------------------

@pytest.mark.parametrize(("info", "value", "expected"), [
    (FieldInfo("summary", "Summary", "string"), 42, "42"),
    (FieldInfo("c1", "Tags text", "string"), ["a", "b"], "a, b"),
    (FieldInfo("c2", "Score", "number"), "7.5", 7.5),
    (FieldInfo("c2", "Score", "number"), 3, 3.0),
    (FieldInfo("duedate", "Due date", "date"), "2025-02-15T23:30:00-05:00", "2025-02-15"),
    (FieldInfo("duedate", "Due date", "date"), "2025-02-15", "2025-02-15"),
    (FieldInfo("c3", "At", "datetime"), "2025-02-15T09:30:00.25Z", "2025-02-15T09:30:00.250+0000"),
    (FieldInfo("c3", "At", "datetime"), "2025-02-15T09:30:00", "2025-02-15T09:30:00.000+0000"),
    (FieldInfo("c4", "Severity", "option"), "Major", {"value": "Major"}),
    (FieldInfo("priority", "Priority", "priority"), "High", {"name": "High"}),
    (FieldInfo("assignee", "Assignee", "user"), "dana@example.com", {"accountId": "acc-dana"}),
    (FieldInfo("assignee", "Assignee", "user"), "5b10ac8d82e05b22cc7d4ef5", {"accountId": "5b10ac8d82e05b22cc7d4ef5"}),
    (FieldInfo("c5", "Fix", "version"), "1.2", {"name": "1.2"}),
    (FieldInfo("project", "Project", "project"), "QA", {"key": "QA"}),
    (FieldInfo("issuetype", "Issue Type", "issuetype"), "Bug", {"name": "Bug"}),
    (FieldInfo("labels", "Labels", "array", "string"), "a b, c\nc", ["a_b", "c"]),
    (FieldInfo("components", "Components", "array", "component"), ["Quality"], [{"name": "Quality"}]),
    (FieldInfo("c6", "Areas", "array", "option"), "x, y", [{"value": "x"}, {"value": "y"}]),
    (FieldInfo("c7", "Approvers", "array", "user"), ["lee@example.com"], [{"accountId": "acc-lee"}]),
    (FieldInfo("c8", "Odd", "sd-customerrequesttype"), {"raw": 1}, {"raw": 1}),
])
def test_field_shapes(info: FieldInfo, value: Any, expected: Any) -> None:
    assert shape(info, value, FakeResolver().account_id) == expected


@pytest.mark.parametrize(("info", "value"), [
    (FieldInfo("c2", "Score", "number"), "seven"),
    (FieldInfo("c2", "Score", "number"), "nan"),
    (FieldInfo("c2", "Score", "number"), True),
    (FieldInfo("duedate", "Due date", "date"), "next Tuesday"),
    (FieldInfo("assignee", "Assignee", "user"), "stranger@example.com"),
])
def test_values_that_do_not_fit_raise_shape_error(info: FieldInfo, value: Any) -> None:
    with pytest.raises(ShapeError):
        shape(info, value, FakeResolver().account_id)


# --- validation --------------------------------------------------------------------------------

def test_unknown_keys_are_rejected_at_every_level(tmp_path: Path) -> None:
    message = problems_of(tmp_path, 'colour = "blue"\n' + MINIMAL + """
[issue]
isue_type = "Bug"
[fields.priority]
from = "severity"
mapp = { minor = "Low" }
[status]
defualt = "To Do"
[comment]
body = "x"
[remote_link]
link = "x"
""")
    for key in ("colour", "issue.isue_type", "fields.priority.mapp", "status.defualt", "comment.body",
                "remote_link.link"):
        assert f": {key}: unknown key" in message, key
    assert "did you mean 'issue_type'?" in message and "did you mean 'map'?" in message


def test_all_problems_are_reported_together() -> None:
    path = FIXTURES / "mapping" / "many_problems.toml"
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    problems = caught.value.problems
    assert caught.value.path == str(path)
    expected = ["extra_keys: unknown key", "issue.issue_typ: unknown key",
                "fields.summary.template: unknown key nc.titel (did you mean 'title'?)",
                "fields.description.template: template syntax error on line 1",
                "fields.priority.map.major: unknown target 'Urgentt'",
                "status.map.open: unknown target 'Backlog'"]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problem
    assert str(caught.value).splitlines()[0].startswith(f"{path}: extra_keys: ")


def test_unknown_target_names_file_key_and_suggestion(tmp_path: Path) -> None:
    message = problems_of(tmp_path, MINIMAL + """
[fields.priority]
from = "severity"
map = { critical = "Urgentt" }
allowed = ["Urgent", "Normal"]
default = "Normall"
""")
    assert "fields.priority.map.critical: unknown target 'Urgentt' (did you mean 'Urgent'?)" in message
    assert "fields.priority.default: unknown target 'Normall' (did you mean 'Normal'?)" in message


def test_declared_allowed_statuses(tmp_path: Path) -> None:
    mapping = load_text(tmp_path, MINIMAL + """
[status]
map = { open = "Backlog", closed = "Closed" }
allowed = ["Backlog", "Closed"]
""")
    assert target_status(mapping, {**THIN, "status": "closed"}) == "Closed"


def test_status_pass_through_must_still_be_allowed(tmp_path: Path) -> None:
    mapping = load_text(tmp_path, MINIMAL + '[status]\nfrom = "status"\n')
    assert target_status(mapping, {**THIN, "status": "Done"}) == "Done"
    assert target_status(mapping, {**THIN, "status": "open"}) is None  # not a Jira status of ours


@pytest.mark.parametrize(("toml", "expected"), [
    ("schema_version = 2\n", "schema_version: required, and this connector reads schema_version = 1"),
    ('schema_version = "1"\n', "schema_version: required"),
    ("", "schema_version: required"),
    ("schema_version = 1\nissue = 3\n", "issue: expected a table, got int"),
    ("schema_version = 1\n[issue]\nissue_type = 5\n", "issue.issue_type: expected a string, got int"),
    ('schema_version = 1\n[issue]\nproject = "qa"\n', "issue.project: 'qa' is not a Jira project key"),
    ('schema_version = 1\n[issue]\nmarker_label = "nc {nc_id}"\n', "issue.marker_label: must contain {nc_id}"),
    ('schema_version = 1\n[issue]\nmarker_label = "qualio-nc"\n', "issue.marker_label: must contain {nc_id}"),
    ('schema_version = 1\n[issue]\nmarker_label = "{nc_id.__class__}"\n', "issue.marker_label: must contain"),
    ("schema_version = 1\n", "fields.summary: required"),
    ('schema_version = 1\n[fields.summary]\nsource = "title"\n', "fields.summary: needs one of value, template"),
    ('[fields.summary]\nvalue = "x"\ntemplate = "y"\n', "fields.summary: set only one of value, template or from"),
    ('[fields.summary]\nfrom = "titel"\n', "fields.summary.from: unknown NC key 'titel' (did you mean 'title'?)"),
    ('[fields.priority]\nfrom = "severity"\nmap = "Low"\n', "fields.priority.map: expected a table, got str"),
    ('[fields.priority]\nfrom = "severity"\nmap = { minor = { a = 1 } }\n', "fields.priority.map.minor: expected"),
    ('[fields.labels]\nvalue = ["a"]\nmap = { a = "b" }\n', "fields.labels.map: a map needs a template or from"),
    ('[fields.x]\ntype = "optoin"\nvalue = "a"\n', "fields.x.type: unknown type 'optoin' (did you mean 'option'?)"),
    ('[fields.duedate]\nvalue = "tomorrow"\n', "fields.duedate.value: does not fit a date field"),
    ('[fields.customfield_1]\ntype = "number"\nfrom = "risk"\ndefault = "n/a"\n',
     "fields.customfield_1.default: does not fit a number field"),
    ('[fields.project]\nvalue = "QA"\n', "fields.project: set issue.project / issue.issue_type instead"),
    ('[fields."Root cause"]\nfrom = "fields.Root cause"\nallowed = "x"\n',
     'fields."Root cause".allowed: expected a list of strings'),
    ("extra_nc_keys = [1]\n", "extra_nc_keys: expected a list of strings"),
    ('[comment]\ntemplate = "{{ comment.bdy }}"\n', "comment.template: unknown key comment.bdy (did you mean 'body'?)"),
    ('[remote_link]\nurl = "{{ url }}"\n', "remote_link.url: unknown name 'url' (templates see only nc)"),
    ('[fields.description]\ntemplate = "{{ comment.body }}"\n', "unknown name 'comment' (templates see only nc)"),
    ('[fields.description]\ntemplate = "{{ nc.title | nosuchfilter }}"\n',
     "fields.description.template: template syntax error on line 1: No filter named 'nosuchfilter'"),
])
def test_problems_name_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    if "schema_version" not in toml + expected and not toml.startswith("extra"):
        toml = "schema_version = 1\n" + toml
    if "[fields.summary]" not in toml and "fields.summary" not in expected:
        toml += '\n[fields.summary]\ntemplate = "x"\n'
    assert expected in problems_of(tmp_path, toml)


def test_unreadable_or_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"missing\.toml: cannot read the file"):
        load_mapping(tmp_path / "missing.toml")
    with pytest.raises(MappingError, match=r"broken\.toml: not valid TOML"):
        load_mapping(write(tmp_path, "schema_version = = 1", "broken.toml"))


def test_extra_nc_keys_allow_payload_keys(tmp_path: Path) -> None:
    text = 'schema_version = 1\n[fields.summary]\ntemplate = "{{ nc.site }}: {{ nc.title }}"\n'
    assert "unknown key nc.site" in problems_of(tmp_path, text)
    mapping = load_text(tmp_path, 'extra_nc_keys = ["site"]\n' + text)
    assert render_fields(mapping, {**THIN, "site": "Berlin", "title": "T"})["summary"] == "Berlin: T"


def test_template_that_would_crash_on_a_thin_event_is_rejected(tmp_path: Path) -> None:
    message = problems_of(tmp_path, 'schema_version = 1\n[fields.summary]\ntemplate = "{{ nc.risk + 1 }}"\n')
    assert "fields.summary.template: fails on a full sample record: TypeError" in message
    message = problems_of(tmp_path, 'schema_version = 1\n[fields.summary]\ntemplate = "{{ nc.tags[0] + nc.title }}"\n')
    assert "fields.summary.template: fails on a thin sample record: UndefinedError" in message


def test_missing_keys_render_empty_and_chain(tmp_path: Path) -> None:
    mapping = load_text(tmp_path, 'schema_version = 1\n[fields.summary]\ntemplate = '
                                  '"<{{ nc.title }}|{{ nc.fields[\'Root cause\'] }}|{{ nc.tags | join(\',\') }}'
                                  '|{{ nc.get(\'risk\') }}|{{ nc.owner | default(\'nobody\') }}>"\n')
    assert render_fields(mapping, {**THIN, "title": None})["summary"] == "<||||nobody>"


# --- templates are code, payload values are data ---------------------------------------------------

INJECTIONS = ["{{ 7*7 }}", "{% for x in nc %}loop{% endfor %}", "{{ nc.__class__ }}", "${7*7}",
              "{# comment #}", "{{ cycler.__init__.__globals__.os.popen('id').read() }}"]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_payload_values_render_literally(default: Mapping, rich: Mapping, payload: str) -> None:
    nc = {**fixture("mapping/nc_rich.json"), "title": payload, "description": payload,
          "fields": {"Root cause": payload}}
    assert render_fields(default, nc)["summary"] == f"[NC-2025-001] {payload}"
    assert render_fields(default, nc)["description"].startswith(payload + "\n")
    rendered = render_fields(rich, nc, FakeResolver())
    assert rendered["customfield_10042"] == payload
    assert f"||Root cause|{payload}|" in rendered["description"]
    assert render_comment(default, nc, {**COMMENT, "body": payload}).endswith("\n" + payload)


@pytest.mark.parametrize("template", [
    "{{ nc.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ nc.title.__class__.__mro__[1].__subclasses__() }}",
    "{% import 'os' as os %}",
    "{% from 'os' import popen %}",
    "{% include 'secrets.txt' %}",
    "{% extends 'base.html' %}",
    "{{ nc | attr('__class__') }}",
    "{{ nc['__class__'] }}",
    "{{ lipsum.__globals__ }}",
    "{{ range(10) | list }}",
    "{{ nc.tags.append('x') }}",
    "{{ nc.title.format.__self__ }}",
])
def test_sandbox_escapes_are_rejected_at_load(tmp_path: Path, template: str) -> None:
    text = f"schema_version = 1\n[fields.summary]\ntemplate = {json.dumps(template)}\n"
    assert "fields.summary.template: " in problems_of(tmp_path, text)


def test_sandbox_escape_via_data_fails_safely_at_render(tmp_path: Path) -> None:
    # The attribute name comes from the payload, so no load-time check can see it.
    mapping = load_text(tmp_path, MINIMAL.replace("{{ nc.title }}", "{{ nc | attr(nc.title | default(\'title\')) }}"))
    assert render_fields(mapping, {**THIN, "title": "ncId"})["summary"] == "Qualio NC NC-2025-001"
    with pytest.raises(MappingError, match=r"fields\.summary\.template: cannot render: SecurityError"):
        render_fields(mapping, {**THIN, "title": "__class__"})
    with pytest.raises(MappingError, match=r"SecurityError"):
        render_fields(mapping, {**THIN, "title": "update"})  # the record is read-only


def test_render_time_failure_names_the_key(tmp_path: Path) -> None:
    mapping = load_text(tmp_path, MINIMAL.replace("{{ nc.title }}", "{{ 100 / (nc.risk | default(1) | int(1)) }}"))
    assert render_fields(mapping, {**THIN, "risk": "4"})["summary"] == "25.0"
    with pytest.raises(MappingError, match=r"mapping\.toml: fields\.summary\.template: cannot render: ZeroDiv"):
        render_fields(mapping, {**THIN, "risk": "0"})


# --- identities --------------------------------------------------------------------------------

def test_comment_key_prefers_the_id() -> None:
    assert comment_key(COMMENT) == "c-1001"
    assert comment_key({**COMMENT, "id": 17}) == "17"


def test_comment_key_without_id_is_a_stable_hash() -> None:
    comment = {"author": "dana@example.com", "createdAt": "2025-01-05T10:15:32Z", "body": "Noted."}
    key = comment_key(comment)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == comment_key(dict(reversed(comment.items()))) == comment_key({**comment, "id": ""})
    assert key == hashlib.sha256(b"dana@example.com\x1f2025-01-05T10:15:32Z\x1fNoted.").hexdigest()
    assert comment_key({**comment, "body": "Noted!"}) != key
    assert comment_key({"author": "ab", "body": "c"}) != comment_key({"author": "a", "body": "bc"})
    assert comment_key({}) == comment_key({"author": None, "createdAt": None, "body": None})


def test_marker_label(default: Mapping, tmp_path: Path) -> None:
    assert marker_label(default, "NC-2025-001") == "qualio-nc-NC-2025-001"
    assert marker_label(default, "NCR-12") == marker_label(default, " NCR-12 ") == "qualio-nc-NCR-12"
    assert " " not in marker_label(default, "NC 7")
    custom = load_text(tmp_path, MINIMAL.replace("[fields.summary]", '[issue]\nmarker_label = "q:{nc_id}.x"\n'
                                                                      "[fields.summary]"))
    assert marker_label(custom, "NCR-12") == "q:NCR-12.x"
    assert render_fields(custom, {**THIN, "ncId": "NCR-12"})["labels"] == ["q:NCR-12.x"]


def test_marker_label_is_always_added_once(tmp_path: Path) -> None:
    mapping = load_text(tmp_path, MINIMAL + '[fields.labels]\nfrom = "tags"\n')
    labels = render_fields(mapping, {**THIN, "tags": ["qualio-nc-NC-2025-001", "x y"]})["labels"]
    assert labels == ["qualio-nc-NC-2025-001", "x_y"]


# --- property: payload text never breaks rendering and is never evaluated -------------------------

payload_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.sampled_from(INJECTIONS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=payload_text, description=payload_text, severity=payload_text, status=payload_text,
       owner=payload_text, due=payload_text, url=payload_text, risk=payload_text, body=payload_text)
def test_random_payload_text_renders_safely(default: Mapping, rich: Mapping, title: str, description: str,
                                            severity: str, status: str, owner: str, due: str, url: str,
                                            risk: str, body: str) -> None:
    nc = {**THIN, "title": title, "description": description, "severity": severity, "status": status,
          "owner": owner, "dueAt": due, "url": url, "risk": risk, "tags": [title, risk],
          "fields": {"Root cause": description, "Risk score": risk}}
    for mapping in (default, rich):
        fields = render_fields(mapping, nc, FakeResolver())
        summary = fields["summary"]
        assert "\n" not in summary and len(summary.encode("utf-16-le")) <= 2 * 255
        target_status(mapping, nc)
        remote_link(mapping, nc)
        render_comment(mapping, nc, {"body": body, "author": owner})
    expected = " ".join(re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", f"[NC-2025-001] {title}").split())
    summary = render_fields(default, nc)["summary"]
    if title.strip():
        assert summary == expected or (summary.endswith("…") and expected.startswith(summary[:-1]))
