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
