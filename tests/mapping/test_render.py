"""Rendering NC records with a mapping (pure): Jira fields and their shapes, status, comments, link, identities."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connector.jira.workflow import StatusTarget
from connector.mapping.load import load_mapping
from connector.mapping.render import (
    comment_key,
    marker_label,
    remote_link,
    render_comment,
    render_fields,
    target_status,
)
from connector.mapping.rules import Mapping, MappingError
from connector.sync.plan import comment_marker
from tests.mapping.helpers import COMMENT, DEFAULT, MINIMAL, THIN, FakeResolver, fixture, load_text

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
    assert target_status(default, nc) == StatusTarget(category="new")
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

    assert status("open") == StatusTarget(category="new")
    assert status("under_investigation") == StatusTarget(category="indeterminate")
    assert status("closed") == StatusTarget(category="done")
    assert status("cancelled") == StatusTarget(category="done")
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
    assert target_status(rich, nc) == StatusTarget(name="Investigating")
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


@pytest.mark.parametrize("ident", ["c-1001", "x" * 64, "Comment 7 (é)", "17", "a]b", "0" * 64])
def test_comment_key_keeps_every_id_that_fits(ident: str) -> None:
    assert comment_key({**COMMENT, "id": ident}) == ident  # keys of comments already posted must not change


def test_long_comment_ids_get_distinct_keys_that_fit() -> None:
    # Cut to 64 characters (the column, and the marker line) two ids with a common prefix were one comment
    a, b = "c" * 64 + "-first", "c" * 64 + "-other"
    key_a, key_b = comment_key({**COMMENT, "id": a}), comment_key({**COMMENT, "id": b})
    assert len(a) == len(b) == 70 and a[:64] == b[:64]
    assert key_a != key_b and len(key_a) <= 64 and len(key_b) <= 64
    assert key_a == "h:" + hashlib.sha256(a.encode()).hexdigest()[:40] == comment_key({"id": f" {a} "})
    assert comment_marker(key_a) != comment_marker(key_b)
    assert comment_key({"id": "x" * 65}) != "x" * 64 and len(comment_key({"id": "x" * 10_000})) == 42


@pytest.mark.parametrize("ident", ["c-1\nc-2", "c\x00", "c\u2028d", "c\x1b[0m"])
def test_comment_ids_that_would_break_the_marker_line_are_hashed(ident: str) -> None:
    key = comment_key({"id": ident})
    assert re.fullmatch(r"h:[0-9a-f]{40}", key) and key != comment_key({"id": ident + "x"})


def test_an_id_of_the_hash_form_cannot_take_another_ids_key() -> None:
    long_id = "y" * 80
    taken = comment_key({"id": long_id})
    assert comment_key({"id": taken}) != taken
    assert re.fullmatch(r"h:[0-9a-f]{40}", comment_key({"id": taken}))


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
