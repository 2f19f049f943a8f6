"""How a sync step ends when it does not succeed: later (RetryLater), never (Permanent), or not ours (LeaseLost).

Raised by `apply` and by enrichment (connector.qualio.enrich); the worker turns them into a retry, a dead
letter, or nothing.
"""

from __future__ import annotations


class RetryLater(Exception):
    """Try this claim again later; `delay` None means the worker's backoff decides."""

    def __init__(self, message: str, delay: float | None = None, count_attempt: bool = True) -> None:
        super().__init__(message)
        self.delay = delay
        self.count_attempt = count_attempt


class Permanent(Exception):
    """Retrying cannot help (bad field, missing transition): dead letter with this message.

    `step` names the step of the sync that failed ("create", "edit", "remote link", "transition",
    "comment", "enrich"), when one did; the dead letter keeps it.
    """

    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class LeaseLost(Exception):
    """Another worker took this NC over (our lease ran out mid-sync): stop, and leave its rows alone."""


class InstallationFault(Exception):
    """Not this NC's fault but the installation's (Jira answered 401, or 403 with the project's permissions
    gone; Qualio refused the API key): every worker pauses, no attempt is counted, and the pause is probed
    again with backoff until a sync goes through."""
