"""Mapping templates: the sandbox, load-time checks on samples, and payload values that stay data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.mapping.render import remote_link, render_comment, render_fields, target_status
from connector.mapping.rules import Mapping, MappingError
from tests.mapping.helpers import COMMENT, MINIMAL, THIN, FakeResolver, fixture, load_text, problems_of

# --- load-time checks: thin and full samples; missing keys render empty --------------------------

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
