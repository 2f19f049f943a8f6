"""The migrations create exactly what the models declare, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from connector import db
from connector.models import Base


def test_migrated_schema_matches_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert db.current_revision(engine) == db.head_revision()


def test_upgrade_is_idempotent(engine):
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()


def test_instances_starting_at_once_upgrade_one_at_a_time(pg_url):
    """Four `db upgrade`s on one fresh PostgreSQL database at the same moment: all succeed, schema at head.
    (Without the lock one of them fails about one run in three: two create the same table.)"""
    import os
    import subprocess
    import sys
    import uuid

    from sqlalchemy import create_engine, text

    from tests.conftest import PG_ADMIN_URL

    name = f"ncc_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        env = {**os.environ, "NC_CONNECTOR_DATABASE_URL": url}
        procs = [subprocess.Popen([sys.executable, "-m", "connector", "db", "upgrade"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
        outputs = [proc.communicate(timeout=120)[0].decode() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
        engine = db.make_engine(url)
        assert db.current_revision(engine) == db.head_revision()
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
