"""Alembic environment, configured in code: the engine comes from connector.db.upgrade()."""

from alembic import context
from sqlalchemy import text

from connector.models import Base

# Several instances starting at once on one PostgreSQL database upgrade one at a time: the lock is held
# to the end of the migration's transaction, and the next one then finds the schema at head.
MIGRATION_LOCK = 0x6E63_6D69  # "ncmi"

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
    connection.commit()
