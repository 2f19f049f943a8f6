"""manifest.json matches the code: version, event types, settings, secrets."""

from __future__ import annotations

import copy

import pytest
from click.testing import CliRunner

from connector.ops.cli import main
from connector.ops.manifest import check_manifest, load_manifest


@pytest.fixture
def manifest():
    return load_manifest()


def test_manifest_matches_the_code(manifest):
    assert check_manifest(manifest) == []


@pytest.mark.parametrize(("tamper", "message"), [
    (lambda m: m.update(version="9.9.9"), "package version"),
    (lambda m: m["source_events"].remove("nc.closed"), "'nc.closed' is handled but not listed"),
    (lambda m: m["source_events"].append("nc.deleted"), "'nc.deleted' is listed but not handled"),
    (lambda m: m["config"].pop(), "is missing"),
    (lambda m: m["config"].append({"env": "NC_CONNECTOR_NOPE"}), "does not exist"),
    (lambda m: next(c for c in m["config"] if c["secret"]).update(default="x"), "secret with a default"),
    (lambda m: m.pop("domain"), "missing key 'domain'"),
])
def test_drift_is_caught(manifest, tamper, message):
    changed = copy.deepcopy(manifest)
    tamper(changed)
    assert any(message in error for error in check_manifest(changed)), check_manifest(changed)


def test_manifest_command_prints_it(manifest):
    import json

    result = CliRunner().invoke(main, ["manifest"])
    assert result.exit_code == 0 and json.loads(result.output) == manifest
