"""Shared fixtures: a real SQLite file and a real PostgreSQL database per test run."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from connector import db
from connector.models import Base
from connector.ops.app import create_app
from connector.receive import sightings
from connector.settings import Settings, load_settings

FIXTURES = Path(__file__).with_name("fixtures")
# The published OpenAPI descriptions the tests validate against, kept in the repository (tests/specs/README.md).
REFERENCE_DIR = Path(__file__).with_name("specs")
PG_ADMIN_URL = os.environ.get("NC_CONNECTOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_SECRET = "whsec_" + "dGVzdC1zZWNyZXQtZm9yLW5jLWNvbm5lY3Rvci10ZXN0cw=="
TABLES = tuple(table.name for table in Base.metadata.sorted_tables)  # emptied between tests, workers included


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def _unreachable(reason: str) -> None:
    message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of this run's own on the shared server, migrated once, dropped at the end."""
    name = f"ncc_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach the server
        admin.dispose()
        _unreachable(str(exc).splitlines()[0])
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


def truncate(engine: Engine) -> None:
    sightings.flush_all()  # none of an earlier test's sightings lands on this test's rows
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
        else:
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or this run's PostgreSQL database."""
    return empty_database(request, tmp_path)


def empty_database(request: pytest.FixtureRequest, directory: Path) -> str:
    """For a fixture parametrized sqlite/postgresql: a copy of the migrated SQLite template in `directory`, or
    this run's PostgreSQL database with every table emptied."""
    if request.param == "sqlite":
        target = directory / "nc-connector.db"
        target.write_bytes(request.getfixturevalue("sqlite_template").read_bytes())
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_url")
    engine = db.make_engine(url)
    truncate(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    yield engine
    sightings.flush_all()
    engine.dispose()


def make_settings(db_url: str = "sqlite:///:memory:", **env: str) -> Settings:
    # A retry span of 0: the tests' dead letters come from the attempt count; tests of the span set their own.
    base = {"NC_CONNECTOR_DATABASE_URL": db_url, "NC_CONNECTOR_WEBHOOK_SECRET": TEST_SECRET,
            "NC_CONNECTOR_RETRY_SPAN": "0s"}
    return load_settings({**base, **env})


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Any:
    app = create_app(settings, engine)
    return app.test_client()
