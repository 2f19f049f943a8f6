"""The nc-connector command line. Bad input exits with code 2 and a message naming the problem."""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading

import click

from connector import __version__, db, logs, metrics
from connector.models import DeliveryStatus
from connector.ops.serving import DEFAULT_SERVER, LOOP_CONNECTIONS, LOOP_WORKERS, SERVERS, THREADS, WORKERS, resolve
from connector.qualio.drift import STATUSES as QUALIO_STATUSES
from connector.settings import Settings, SettingsError, load_settings, require_webhook_auth

log = logging.getLogger("connector")


JIRA_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")


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
@click.option("--workers", type=click.IntRange(1, 64),
              help=f"Web processes [default: {LOOP_WORKERS} under granian-rsgi on PostgreSQL, else {WORKERS}].")
@click.option("--threads", type=click.IntRange(1, 64),
              help=f"Requests each web process handles at once [default: {LOOP_CONNECTIONS} under granian-rsgi on "
                   f"PostgreSQL, else {THREADS}].")
@click.option("--server", type=click.Choice(SERVERS), default=DEFAULT_SERVER, show_default=True,
              help="HTTP server of the web processes; auto: granian-rsgi (the webhook on an event loop) on "
                   "PostgreSQL, granian (WSGI) on SQLite, the fastest of each (README, Performance).")
@click.option("--worker/--no-worker", "with_worker", default=True, show_default=True,
              help="Also run a sync worker (a child process); --no-worker when workers are scaled separately.")
def serve(host: str, port: int, workers: int | None, threads: int | None, server: str, with_worker: bool) -> None:
    """Serve the webhook endpoint (and, by default, a sync worker)."""
    settings = settings_or_exit()
    server, workers, threads = resolve(server, workers, threads, settings.database_url)
    try:
        require_webhook_auth(settings)
        if with_worker:
            check_sync_settings(settings)
    except (SettingsError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if settings.allow_unsigned:
        log.warning("NC_CONNECTOR_ALLOW_UNSIGNED=true: unauthenticated deliveries are accepted (trials only)")
    engine = db.make_engine(settings.database_url)
    if db.current_revision(engine) != db.head_revision():
        db.upgrade(engine)
    engine.dispose()

    # Every process we start counts into one directory, so /metrics adds them up.
    metrics_dir = tempfile.mkdtemp(prefix="nc-connector-metrics-")
    os.environ.setdefault(metrics.MULTIPROC_ENV, metrics_dir)
    from connector.ops.app import create_app
    from connector.ops.serving import serve as run_server
    from connector.ops.supervise import Supervisor, serve_supervised
    from connector.sync.heartbeat import SUPERVISOR_ENV

    # The worker child and the web processes learn who supervises (the web's /readyz checks that worker).
    supervisor = Supervisor(settings) if with_worker else None
    if supervisor is not None:
        os.environ[SUPERVISOR_ENV] = supervisor.id
    else:
        os.environ.pop(SUPERVISOR_ENV, None)
    owner = os.getpid()
    log.info("serving", extra={"server": server, "workers": workers, "threads": threads, "port": port})
    try:
        app_factory = functools.partial(create_app, settings, threads=threads)
        serve_supervised(lambda: run_server(app_factory, host, port, workers, threads, server), supervisor)
    finally:
        if os.getpid() == owner:  # the server's forked web processes leave through here too
            shutil.rmtree(metrics_dir, ignore_errors=True)


@main.command()
def worker() -> None:
    """Run the sync loop: queued deliveries -> Jira. On SIGTERM/SIGINT it finishes the sync in flight (at most
    NC_CONNECTOR_WORKER_STOP_TIMEOUT), releases its claims and exits."""
    settings = settings_or_exit()
    try:
        check_sync_settings(settings)
        from connector.ops.runtime import build_worker
        from connector.sync.heartbeat import SUPERVISOR_ENV

        sync_worker = build_worker(settings)
    except (SettingsError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    sync_worker.supervisor = os.environ.get(SUPERVISOR_ENV) or None  # set when `serve` runs this worker
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from connector.ops.reconcile_cmd import start_periodic

    start_periodic(settings, stop)  # every NC_CONNECTOR_RECONCILE_INTERVAL, one run across the installation
    sync_worker.run_forever(stop)


def check_sync_settings(settings: Settings) -> None:
    """The worker needs a Jira and a valid mapping: fail at start-up, naming what is wrong."""
    from connector.jira.gateway import gateway_from_settings
    from connector.ops.runtime import load_configured_mapping

    gateway_from_settings(settings)
    load_configured_mapping(settings)


@main.command()
@click.option("--batch-size", type=click.IntRange(1, 1_000_000),
              help="Rows per transaction [default: 500 on SQLite, 5000 on PostgreSQL].")
def prune(batch_size: int | None) -> None:
    """Delete expired fingerprints and old finished deliveries, in batches that leave ingest room."""
    from connector.receive.prune import prune as prune_tables

    settings = settings_or_exit()
    engine = db.make_engine(settings.database_url)

    def progress(table: str, count: int) -> None:
        if count:
            click.echo(f"\r{table}: {count} deleted", nl=False, err=True)

    result = prune_tables(engine, settings.fingerprint_retention, settings.delivery_retention,
                          batch_size, progress)
    click.echo("", err=True)
    click.echo(f"pruned {result.fingerprints} fingerprints and {result.deliveries} finished deliveries")


@main.command("dead-letters")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
def dead_letters(limit: int) -> None:
    """List deliveries that failed for good, with their last error."""
    from connector.ops import views as admin

    settings = settings_or_exit()
    rows = admin.list_deliveries(db.make_engine(settings.database_url), status=DeliveryStatus.DEAD, limit=limit)
    click.echo(admin.format_deliveries(rows) if rows else "no dead letters")


@main.command()
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Re-queue every dead letter.")
def replay(delivery_ids: tuple[int, ...], all_dead: bool) -> None:
    """Re-queue dead letters (by id, or --all-dead) for another round of attempts."""
    from connector.sync import queue

    if bool(delivery_ids) == all_dead:
        raise click.UsageError("give delivery ids or --all-dead (not both)")
    settings = settings_or_exit()
    count = queue.replay(db.make_engine(settings.database_url), delivery_ids, all_dead)
    if delivery_ids and count < len(delivery_ids):
        click.echo(f"re-queued {count} of {len(delivery_ids)}: the others are not dead letters", err=True)
        sys.exit(1)
    click.echo(f"re-queued {count} deliveries")


@main.command()
def status() -> None:
    """Queue depth, dead letters, oldest waiting delivery, last sync, the workers and their heartbeats."""
    from connector.ops import views as admin

    settings = settings_or_exit()
    engine = db.make_engine(settings.database_url)
    click.echo(admin.format_status(admin.status(engine, settings.worker_heartbeat)))


@main.group("links")
def links_group() -> None:
    """The NC -> Jira issue links: drop or change one after a person deleted or moved an issue."""


@links_group.command("unlink")
@click.argument("nc_id")
def links_unlink(nc_id: str) -> None:
    """Forget NC_ID's issue and queue its stored deliveries again: the next sync finds the issue by its
    label or creates a new one, and posts the NC's comments there."""
    from connector.sync import links, queue

    settings = settings_or_exit()
    engine = db.make_engine(settings.database_url)
    if not links.unlink(engine, nc_id):
        raise click.UsageError(f"no link for {nc_id!r}: nothing of it was synced yet")
    count = queue.requeue_nc(engine, nc_id)
    click.echo(f"{nc_id} is no longer linked to a Jira issue; re-queued its {count} stored deliveries")


@links_group.command("relink")
@click.argument("nc_id")
@click.argument("jira_key")
def links_relink(nc_id: str, jira_key: str) -> None:
    """Tie NC_ID to the issue JIRA_KEY; its fields are sent there at the next sync."""
    from sqlalchemy.exc import IntegrityError

    from connector.sync import links

    if not JIRA_KEY.fullmatch(jira_key):
        raise click.UsageError(f"{jira_key!r} is not a Jira issue key (like QA-12)")
    settings = settings_or_exit()
    try:
        done = links.relink(db.make_engine(settings.database_url), nc_id, jira_key)
    except IntegrityError:
        raise click.UsageError(f"{jira_key} is already linked to another NC; unlink that one first") from None
    if not done:
        raise click.UsageError(f"no link for {nc_id!r}: nothing of it was synced yet")
    click.echo(f"{nc_id} is now linked to {jira_key}")


@main.group()
def deliveries() -> None:
    """Inspect stored deliveries."""


@deliveries.command("list")
@click.option("--nc", "nc_id", help="Only this NC.")
@click.option("--status", type=click.Choice([s.value for s in DeliveryStatus]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
def deliveries_list(nc_id: str | None, status: str | None, limit: int) -> None:
    """The newest deliveries, filtered by NC and status."""
    from connector.ops import views as admin

    settings = settings_or_exit()
    rows = admin.list_deliveries(db.make_engine(settings.database_url), nc_id=nc_id, status=status, limit=limit)
    click.echo(admin.format_deliveries(rows) if rows else "no deliveries")


@deliveries.command("show")
@click.argument("delivery_id", type=int)
def deliveries_show(delivery_id: int) -> None:
    """One delivery in full: status, attempts, last error, payload."""
    from connector.ops import views as admin

    settings = settings_or_exit()
    shown = admin.show_delivery(db.make_engine(settings.database_url), delivery_id)
    if shown is None:
        raise click.UsageError(f"no delivery {delivery_id}")
    click.echo(shown)


@main.group()
def mappings() -> None:
    """Field mappings."""


@mappings.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--payload", type=click.Path(exists=True, dir_okay=False), help="An NC payload (JSON) to render.")
@click.option("--live", is_flag=True, help="Also check project, issue type and fields against the configured Jira.")
def mappings_check(path: str | None, payload: str | None, live: bool) -> None:
    """Validate a mapping file and print the Jira fields it would send."""
    from connector.ops import views as admin

    settings = settings_or_exit()
    try:
        output, problems = admin.check_mapping(settings, path, payload, live)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(output)
    if problems:
        click.echo("\n".join(problems), err=True)
        sys.exit(1)


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the drift table; queue nothing.")
@click.option("--backfill", is_flag=True, help="Also queue NCs last modified before the installation's watermark.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(QUALIO_STATUSES),
              help="With --backfill: the Qualio statuses to backfill (repeatable; default open).")
def reconcile(dry_run: bool, backfill: bool, statuses: tuple[str, ...]) -> None:
    """Sweep Qualio's event list once and queue a sync for every NC the webhooks missed."""
    from connector.ops import reconcile_cmd

    reconcile_cmd.main(settings_or_exit(), dry_run, backfill, statuses)


@main.command()
def demo() -> None:
    """Play the duplicate-delivery story against a local Jira sandbox (SQLite, nothing to set up)."""
    from connector.ops.demo import run_demo

    sys.exit(run_demo(lambda line: click.echo(line)))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def sandbox(ctx: click.Context) -> None:
    """Serve the Jira sandbox (a test instrument: try a mapping without touching your Jira). See --help."""
    import argparse

    from connector import sandbox as jira_sandbox

    parser = argparse.ArgumentParser(prog="nc-connector sandbox", description="In-memory Jira REST v2 subset.")
    jira_sandbox.add_arguments(parser)
    args = parser.parse_args(ctx.args)
    jira_sandbox.run(args.host, args.port, **jira_sandbox.options_from_args(args))


@main.command()
def manifest() -> None:
    """Print manifest.json (what this connector is, handles and can be configured with)."""
    from connector.ops.manifest import manifest_path

    click.echo(manifest_path().read_text(encoding="utf-8").rstrip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
