"""Secrets: one type that prints as `<secret>`, and the one helper that takes secret values out of text.

A `Secret` is a `str` (it is used as one: in headers, HMAC keys, basic auth) whose `repr()` hides it, so a
secret inside a settings object, a dataclass or a list never reaches a log line or an error by `repr`.
Text that may carry one (a log line, an error message echoing a request) goes through `redact`.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "<secret>"


class Secret(str):
    __slots__ = ()

    def __repr__(self) -> str:
        return REDACTED


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every non-empty secret replaced by `<secret>` (longest first, so no part of one survives)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
