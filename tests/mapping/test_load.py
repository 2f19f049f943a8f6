"""Loading mappings: the shipped files, and validation that names the file and the key of every problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.jira.workflow import StatusTarget
from connector.mapping.load import default_mapping_path, load_mapping
from connector.mapping.render import render_fields, target_status
from connector.mapping.rules import SCHEMA_VERSION, MappingError
from tests.conftest import FIXTURES
from tests.mapping.helpers import DEFAULT, MINIMAL, RICH, THIN, load_text, problems_of, write

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
    assert target_status(mapping, {**THIN, "status": "closed"}) == StatusTarget(name="Closed")


def test_status_pass_through_must_still_be_allowed(tmp_path: Path) -> None:
    mapping = load_text(tmp_path, MINIMAL + '[status]\nfrom = "status"\n')
    assert target_status(mapping, {**THIN, "status": "Done"}) == StatusTarget(name="Done")
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
