"""The nc-connector command line. Bad input exits with code 2 and a message naming the problem."""

from __future__ import annotations

import logging
import sys

import click

from connector import __version__, db, logs
from connector.settings import Settings, SettingsError, load_settings, require_webhook_auth

log = logging.getLogger("connector")


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    logs.configure(settings.log_level, settings.secrets)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nc-connector")
def main() -> None:
    """Qualio NC webhooks in, exactly one Jira issue per NC out."""


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest revision."""
    settings = settings_or_exit()
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    click.echo(f"database at revision {db.current_revision(engine)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Web processes (gunicorn).")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the webhook endpoint."""
    settings = settings_or_exit()
    try:
        require_webhook_auth(settings)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    if settings.allow_unsigned:
        log.warning("NC_CONNECTOR_ALLOW_UNSIGNED=true: unauthenticated deliveries are accepted (trials only)")
    engine = db.make_engine(settings.database_url)
    if db.current_revision(engine) != db.head_revision():
        db.upgrade(engine)
    engine.dispose()

    from connector.app import create_app
    from connector.serving import serve as run_gunicorn

    run_gunicorn(lambda: create_app(settings), host, port, workers)


@main.command()
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1, 1_000_000))
def prune(batch_size: int) -> None:
    """Delete expired fingerprints and old finished deliveries, in batches."""
    from connector.store import prune as prune_tables

    settings = settings_or_exit()
    engine = db.make_engine(settings.database_url)

    def progress(table: str, count: int) -> None:
        if count:
            click.echo(f"\r{table}: {count} deleted", nl=False, err=True)

    result = prune_tables(engine, settings.fingerprint_retention, settings.delivery_retention,
                          batch_size, progress)
    click.echo("", err=True)
    click.echo(f"pruned {result.fingerprints} fingerprints and {result.deliveries} finished deliveries")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
