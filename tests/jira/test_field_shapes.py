"""Jira field type -> wire shape (connector.jira.field_shapes), pure."""

from __future__ import annotations

from typing import Any

import pytest

from connector.jira.field_shapes import FieldInfo, ShapeError, shape

ACCOUNTS = {"dana@example.com": "acc-dana", "lee@example.com": "acc-lee"}  # the user directory
USER_NAMES = {"dana@example.com": "dscully"}


def cloud_user(ref: str) -> dict[str, str] | None:
    """What a Cloud gateway's user_ref answers: an e-mail looked up, anything else an accountId."""
    if "@" not in ref:
        return {"accountId": ref}
    account = ACCOUNTS.get(ref)
    return {"accountId": account} if account else None


def server_user(ref: str) -> dict[str, str] | None:
    """What a Server/Data Center gateway's user_ref answers: user names."""
    if "@" not in ref:
        return {"name": ref}
    name = USER_NAMES.get(ref)
    return {"name": name} if name else None


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
    assert shape(info, value, cloud_user) == expected


@pytest.mark.parametrize(("info", "value"), [
    (FieldInfo("c2", "Score", "number"), "seven"),
    (FieldInfo("c2", "Score", "number"), "nan"),
    (FieldInfo("c2", "Score", "number"), True),
    (FieldInfo("duedate", "Due date", "date"), "next Tuesday"),
    (FieldInfo("assignee", "Assignee", "user"), "stranger@example.com"),
])
def test_values_that_do_not_fit_raise_shape_error(info: FieldInfo, value: Any) -> None:
    with pytest.raises(ShapeError):
        shape(info, value, cloud_user)


# --- users -----------------------------------------------------------------------------------------


def test_users_take_the_deployments_shape() -> None:
    assignee, approvers = FieldInfo("assignee", "Assignee", "user"), FieldInfo("c7", "Approvers", "array", "user")
    assert shape(assignee, "dana@example.com", server_user) == {"name": "dscully"}
    assert shape(assignee, "jdoe", server_user) == {"name": "jdoe"}
    assert shape(approvers, "dana@example.com, jdoe", server_user) == [{"name": "dscully"}, {"name": "jdoe"}]


def test_without_a_lookup_an_id_is_an_account_id_and_an_email_does_not_fit() -> None:
    assignee = FieldInfo("assignee", "Assignee", "user")
    assert shape(assignee, " 5b10ac8d82e05b22cc7d4ef5 ") == {"accountId": "5b10ac8d82e05b22cc7d4ef5"}
    with pytest.raises(ShapeError, match="e-mail address does not match a Jira account"):
        shape(assignee, "dana@example.com")


def test_an_unknown_user_does_not_fit_and_the_message_keeps_it_private() -> None:
    assignee = FieldInfo("assignee", "Assignee", "user")
    for ref in ("stranger@example.com", "ghost-account"):
        with pytest.raises(ShapeError) as caught:
            shape(assignee, ref, lambda _ref: None)
        assert ref not in str(caught.value)


# --- identities --------------------------------------------------------------------------------
