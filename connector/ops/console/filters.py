"""The console's query strings and forms, parsed and checked: a bad value is a 400 naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from connector.models import DeliveryStatus

PAGE_SIZE = 50
MAX_PAGE = 100_000
SOURCES = ("webhook", "reconcile")
# The steps a dead letter can name (sync.errors.Permanent.step).
STEPS = ("mapping", "enrich", "issue", "create", "edit", "remote link", "transition", "comment")


class BadInput(ValueError):
    """A console request whose input cannot be used; the status and message are shown as they are."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class DeliveryFilter:
    """Deliveries matching every field that is set (the search page and the dead-letter page)."""

    nc: str = ""  # NC id prefix
    status: str = ""
    event: str = ""  # exact event type
    source: str = ""
    step: str = ""  # the step a dead letter failed at
    error: str = ""  # a part of the last error
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    upto: int | None = None  # ids up to this one (a replay confirms what its preview counted)

    def query_args(self) -> dict[str, str]:
        """The filter as query-string or hidden-form values (for links, paging and the replay preview)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in ("", None):
                continue
            out[f.name] = value.strftime(TIME_FORMAT) if isinstance(value, datetime) else str(value)
        return out

    @property
    def empty(self) -> bool:
        return not self.query_args()


TIME_FORMAT = "%Y-%m-%dT%H:%M"


def _text(args: Mapping[str, str], name: str, limit: int = 64) -> str:
    value = (args.get(name) or "").strip()
    if len(value) > limit:
        raise BadInput(f"{name}: at most {limit} characters")
    if any(not ch.isprintable() for ch in value):
        raise BadInput(f"{name}: only printable characters")
    return value


def _choice(args: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = _text(args, name)
    if value and value not in allowed:
        raise BadInput(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def parse_time(raw: str, name: str) -> datetime | None:
    """A date (2025-01-05) or a date and time (2025-01-05T10:15, as a datetime-local input sends), in UTC."""
    value = raw.strip().removesuffix("Z")
    if not value:
        return None
    for form in (TIME_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, form).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise BadInput(f"{name}: {raw[:40]!r} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM), UTC")


def positive_int(raw: str | None, name: str, default: int | None = None, limit: int = 2**62) -> int | None:
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip()
    if not value.isascii() or not value.isdigit() or int(value) < 1 or int(value) > limit:
        raise BadInput(f"{name}: {value[:40]!r} is not a whole number from 1 to {limit}")
    return int(value)


def delivery_filter(args: Mapping[str, str], dead_only: bool = False) -> DeliveryFilter:
    statuses = tuple(s.value for s in DeliveryStatus)
    found = DeliveryFilter(
        nc=_text(args, "nc"), status=DeliveryStatus.DEAD if dead_only else _choice(args, "status", statuses),
        event=_text(args, "event"), source=_choice(args, "source", SOURCES), step=_choice(args, "step", STEPS),
        error=_text(args, "error", 200), since=parse_time(args.get("since", ""), "since"),
        until=parse_time(args.get("until", ""), "until"), upto=positive_int(args.get("upto"), "upto"))
    if found.since and found.until and found.since >= found.until:
        raise BadInput("since: must be before until")
    return found


def page_number(args: Mapping[str, str]) -> int:
    return positive_int(args.get("page"), "page", 1, MAX_PAGE) or 1


def nc_id(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 64 or any(not ch.isprintable() for ch in value):
        raise BadInput("an NC id is 1 to 64 printable characters, e.g. NC-2025-014")
    return value
