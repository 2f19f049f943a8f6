"""The command line: help, version, db upgrade, prune, and refusals with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from connector import __version__, db
from connector.ops.cli import main
from connector.ops.serving import resolve


def run(*args: str, **env: str):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_version_and_help():
    assert run("--version").output.strip() == f"nc-connector, version {__version__}"
    help_text = run("--help").output
    for command in ("serve", "db", "prune"):
        assert command in help_text


def test_db_upgrade_then_prune(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = run("db", "upgrade", NC_CONNECTOR_DATABASE_URL=url)
    assert result.exit_code == 0 and f"revision {db.head_revision()}" in result.output
    result = run("prune", NC_CONNECTOR_DATABASE_URL=url)
    assert result.exit_code == 0 and "pruned 0 fingerprints" in result.output


def test_bad_setting_exits_2_naming_the_key():
    result = run("db", "upgrade", NC_CONNECTOR_FINGERPRINT_RETENTION="forever")
    assert result.exit_code == 2 and "NC_CONNECTOR_FINGERPRINT_RETENTION" in result.output


@pytest.mark.parametrize("named", ["NC_CONNECTOR_WEBHOOK_SECRET", "NC_CONNECTOR_WEBHOOK_TOKEN",
                                   "NC_CONNECTOR_ALLOW_UNSIGNED"])
def test_serve_refuses_without_authentication(named, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NC_CONNECTOR_")}
    env["NC_CONNECTOR_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    proc = subprocess.run([sys.executable, "-m", "connector", "serve", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert named in proc.stderr  # the message names every way to fix it


@pytest.mark.parametrize(("asked", "url", "expected"), [
    (("auto", None, None), "postgresql+psycopg://h/db", ("granian-rsgi", 1, 16)),
    (("auto", None, None), "sqlite:///nc.db", ("granian", 2, 8)),
    (("auto", 3, None), "postgresql+psycopg://h/db", ("granian-rsgi", 3, 16)),  # what was asked is kept
    (("granian-rsgi", None, None), "sqlite:///nc.db", ("granian-rsgi", 2, 8)),  # a loop only hands SQLite to threads
    (("gunicorn", None, 4), "postgresql+psycopg://h/db", ("gunicorn", 2, 4)),
    (("granian", 1, 1), "postgresql+psycopg://h/db", ("granian", 1, 1)),
])
def test_serve_resolves_its_server_and_shape_by_the_database(asked, url, expected):
    assert resolve(*asked, url) == expected
