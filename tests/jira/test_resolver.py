"""The cached field and user look-ups (connector.jira.resolver): what is cached, and for how long."""

from __future__ import annotations

import pytest

from connector.jira.gateway import FieldInfo, JiraError
from connector.jira.resolver import DEFAULT_TTL, CachedResolver

SEVERITY = FieldInfo("customfield_10010", "Severity", "option")
ROOT_CAUSE = FieldInfo("customfield_10020", "Root cause", "string")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lookups:
    """Jira's answers, one per call, in order; a JiraError in the list is raised."""

    def __init__(self, fields: list[list[FieldInfo] | JiraError] | None = None,
                 users: dict[str, list[dict[str, str] | JiraError | None]] | None = None) -> None:
        self._fields = list(fields or [])
        self._users = {ref: list(answers) for ref, answers in (users or {}).items()}
        self.asked: list[str] = []

    def fields(self) -> list[FieldInfo]:
        self.asked.append("fields")
        answer = self._fields.pop(0)
        if isinstance(answer, JiraError):
            raise answer
        return answer

    def user_ref(self, ref: str) -> dict[str, str] | None:
        self.asked.append(ref)
        answer = self._users[ref].pop(0)
        if isinstance(answer, JiraError):
            raise answer
        return answer


def test_fields_are_fetched_once_and_found_by_id_or_name() -> None:
    lookups = Lookups(fields=[[SEVERITY]])
    resolver = CachedResolver(lookups)
    assert resolver.field("customfield_10010") == SEVERITY
    assert resolver.field("severity") == SEVERITY
    assert resolver.field("Nope") is None
    assert lookups.asked == ["fields"]


def test_a_failed_field_list_is_not_cached() -> None:
    down = JiraError("Service Unavailable", status=503, retryable=True)
    lookups = Lookups(fields=[down, [SEVERITY]])
    resolver = CachedResolver(lookups)
    with pytest.raises(JiraError):
        resolver.field("Severity")
    assert resolver.field("Severity") == SEVERITY  # asked again, not an empty list for the process's life
    assert lookups.asked == ["fields", "fields"]


def test_the_field_list_expires_after_the_ttl() -> None:
    clock = Clock()
    lookups = Lookups(fields=[[SEVERITY], [SEVERITY, ROOT_CAUSE]])
    resolver = CachedResolver(lookups, ttl=60, clock=clock)
    assert resolver.field("Root cause") is None
    clock.now += 59.9
    assert resolver.field("Root cause") is None  # still the cached list
    assert lookups.asked == ["fields"]
    clock.now += 0.1
    assert resolver.field("Root cause") == ROOT_CAUSE  # a field added in Jira, seen without a restart
    assert lookups.asked == ["fields", "fields"]


def test_an_expired_field_list_that_cannot_be_refreshed_is_asked_again() -> None:
    clock = Clock()
    lookups = Lookups(fields=[[SEVERITY], JiraError("down", status=503, retryable=True), [ROOT_CAUSE]])
    resolver = CachedResolver(lookups, ttl=60, clock=clock)
    assert resolver.field("Severity") == SEVERITY
    clock.now += 60
    with pytest.raises(JiraError):
        resolver.field("Severity")
    assert resolver.field("Root cause") == ROOT_CAUSE
    assert lookups.asked == ["fields", "fields", "fields"]


def test_users_are_cached_and_none_is_an_answer() -> None:
    lookups = Lookups(users={"dana@example.com": [{"accountId": "acc-dana"}], "nobody@example.com": [None]})
    resolver = CachedResolver(lookups)
    for _ in range(2):
        assert resolver.user("dana@example.com") == {"accountId": "acc-dana"}
        assert resolver.user("nobody@example.com") is None
    assert lookups.asked == ["dana@example.com", "nobody@example.com"]


def test_a_failed_user_lookup_is_not_cached() -> None:
    down = JiraError("rate limited", status=429, retryable=True)
    lookups = Lookups(users={"dana@example.com": [down, {"name": "dscully"}]})
    resolver = CachedResolver(lookups)
    with pytest.raises(JiraError):
        resolver.user("dana@example.com")
    assert resolver.user("dana@example.com") == {"name": "dscully"}
    assert lookups.asked == ["dana@example.com", "dana@example.com"]


def test_users_expire_after_the_ttl() -> None:
    """A deactivated account stops being used without a restart (and a new one starts being found)."""
    clock = Clock()
    lookups = Lookups(users={"dana@example.com": [{"accountId": "acc-dana"}, None],
                             "lee@example.com": [None, {"accountId": "acc-lee"}]})
    resolver = CachedResolver(lookups, ttl=300, clock=clock)
    assert resolver.user("dana@example.com") == {"accountId": "acc-dana"}
    assert resolver.user("lee@example.com") is None
    clock.now += 299
    assert resolver.user("dana@example.com") == {"accountId": "acc-dana"}
    assert resolver.user("lee@example.com") is None
    clock.now += 1
    assert resolver.user("dana@example.com") is None
    assert resolver.user("lee@example.com") == {"accountId": "acc-lee"}
    assert lookups.asked == ["dana@example.com", "lee@example.com"] * 2


def test_a_cached_user_cannot_be_changed_by_its_caller() -> None:
    lookups = Lookups(users={"dana@example.com": [{"accountId": "acc-dana"}]})
    resolver = CachedResolver(lookups)
    resolver.user("dana@example.com")["accountId"] = "tampered"  # type: ignore[index]
    assert resolver.user("dana@example.com") == {"accountId": "acc-dana"}


def test_the_default_ttl_is_an_hour() -> None:
    clock = Clock()
    lookups = Lookups(fields=[[SEVERITY], [SEVERITY]])
    resolver = CachedResolver(lookups, clock=clock)
    resolver.field("Severity")
    clock.now += DEFAULT_TTL - 1
    resolver.field("Severity")
    assert lookups.asked == ["fields"]
    clock.now += 1
    resolver.field("Severity")
    assert lookups.asked == ["fields", "fields"]
    assert DEFAULT_TTL == 3600
