"""The sandbox's JQL subset: what queries match (on both search endpoints), and Jira's errors for bad JQL."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.sandbox.conftest import V2, assert_error, call, search_keys


@pytest.mark.parametrize(("jql", "keys"), [
    ('labels = "qualio-nc-1"', ["QA-1"]),
    ("labels = qualio-nc-1", ["QA-1"]),
    ("labels = QUALIO-NC-1", ["QA-1"]),
    ("labels in (qualio-nc-1, 'qualio-nc-2')", ["QA-2", "QA-1"]),
    ('project = QA AND labels = "qualio" ORDER BY created ASC', ["QA-1", "QA-2"]),
    ('project = "QA" AND labels in ("qualio-nc-2", other) ORDER BY created DESC', ["QA-3", "QA-2"]),
    ("labels != qualio ORDER BY key", ["QA-3"]),
    ("labels not in (qualio) ORDER BY key", ["QA-3"]),
    ("labels = qualio AND NOT labels = qualio-nc-1", ["QA-2"]),
    ("labels = qualio && labels != qualio-nc-1 || labels = other ORDER BY key", ["QA-2", "QA-3"]),
    ("(labels = other OR labels = qualio-nc-1) and project = QA order by key asc", ["QA-1", "QA-3"]),
    ("labels is EMPTY", []),
    ("key = QA-2", ["QA-2"]),
    ('project = "Quality Assurance" AND issuekey in (QA-3, 10001) ORDER BY key DESC', ["QA-3", "QA-1"]),
    ('summary ~ "pump other"', ["QA-3"]),
    ("status = 'To Do' AND issuetype = Non-conformance AND priority = Medium ORDER BY id", ["QA-1", "QA-2", "QA-3"]),
    ("created >= '2025-06-15 15:06' ORDER BY created", ["QA-1", "QA-2", "QA-3"]),
    ("created > -1d AND assignee is EMPTY AND reporter = currentUser() ORDER BY key", ["QA-1", "QA-2", "QA-3"]),
])
@pytest.mark.parametrize("path", ["search", "search/jql"])
def test_search_by_jql(labelled: FlaskClient, path: str, jql: str, keys: list[str]) -> None:
    assert search_keys(labelled, jql, path) == keys


@pytest.mark.parametrize(("jql", "message"), [
    ('summary = "Pump"', "The operator '=' is not supported by the 'summary' field."),
    ("foo = 1", "Field 'foo' does not exist or you do not have permission to view it."),
    ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
    ("key = QA-999", "An issue with key 'QA-999' does not exist for field 'key'."),
    ("labels = ", "Error in the JQL Query"),
    ("labels = a labels = b", "Error in the JQL Query"),
    ("labels in (a, b", "Error in the JQL Query"),
    ("labels = x ORDER BY labels", "Field 'labels' does not support sorting."),
    ("created > 'yesterday'", "Date value 'yesterday' for field 'created' is invalid."),
    ("labels = a ; b", "The character ';' is a reserved JQL character."),
])
def test_bad_jql_is_400(labelled: FlaskClient, jql: str, message: str) -> None:
    body = assert_error(call(labelled, "GET", f"{V2}/search", query_string={"jql": jql}), 400)
    assert message in body["errorMessages"][0]
