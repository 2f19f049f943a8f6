"""The mapping's view of Jira (field ids and types, users), looked up once and cached."""

from __future__ import annotations

from typing import Protocol

from connector.jira.gateway import FieldInfo


class JiraLookups(Protocol):
    """The two Jira reads the resolver makes (a JiraGateway has them)."""

    def fields(self) -> list[FieldInfo]: ...

    def account_id(self, email: str) -> str | None: ...


class CachedResolver:
    """Resolves custom fields by id or name (Jira's field list, fetched once) and users by e-mail."""

    def __init__(self, gateway: JiraLookups) -> None:
        self._gateway = gateway
        self._fields: dict[str, FieldInfo] | None = None
        self._accounts: dict[str, str | None] = {}

    def field(self, name_or_id: str) -> FieldInfo | None:
        if self._fields is None:
            self._fields = {}
            for info in self._gateway.fields():
                self._fields.setdefault(info.id, info)
                self._fields.setdefault(info.name.casefold(), info)
        return self._fields.get(name_or_id) or self._fields.get(name_or_id.casefold())

    def account_id(self, email: str) -> str | None:
        if email not in self._accounts:
            self._accounts[email] = self._gateway.account_id(email)
        return self._accounts[email]
