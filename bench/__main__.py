"""Entry point: `bench/run [--quick] ...` (or `python -m bench`). See bench/README.md."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import burst, ingest, procs, report, traffic
from bench.context import GUNICORN_THREADS, REPO, Config, Context
from bench.dbs import PgDatabase, find_pgbench
from connector.ops.serving import DEFAULT_SERVER as SERVE_DEFAULT
from connector.ops.serving import SERVERS as SERVE_SERVERS
from connector.ops.serving import THREADS as SERVE_THREADS

DEFAULT_PG = os.environ.get("NC_CONNECTOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SECTIONS = ("servers", "traffic", "ingest", "dedup", "burst", "e2e")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one round, shorter runs (a few minutes)")
    parser.add_argument("--pg", default=DEFAULT_PG,
                        help="an existing database on the PostgreSQL server to connect to for CREATE/DROP DATABASE "
                             "(default: $NC_CONNECTOR_TEST_PG or %(default)s)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run, comma-separated: "
                        + ", ".join(SECTIONS) + " (memory is always reported)")
    parser.add_argument("--db", default="postgresql,sqlite", help="databases: postgresql, sqlite")
    parser.add_argument("--workers", type=int, help="web workers for both services (default: sweep in full mode, "
                        "4 in quick mode); in section 0 traffic the baseline's only (default 4)")
    parser.add_argument("--ours-shape", type=parse_shape, metavar="WxT",
                        help="ours in section 0 traffic: W web processes x T request threads or connections "
                             "(default: as serve resolves it for the database)")
    parser.add_argument("--ours-server", choices=SERVE_SERVERS,
                        help=f"ours in section 0 traffic: serve's --server (default: serve's, {SERVE_DEFAULT})")
    parser.add_argument("--rounds", type=int, help="ingest rounds per database (ours/baseline pairs)")
    parser.add_argument("--duration", type=float, help="seconds measured per ingest run (after the warm-up)")
    parser.add_argument("--burst-workers", type=int, help="sync workers draining the burst (default 2)")
    parser.add_argument("--baseline-worker-class", choices=("sync", "gthread"),
                        help="gunicorn worker class of the baseline (default sync, as the issue ran it; gthread: "
                             f"{GUNICORN_THREADS} threads)")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "latest.md"),
                        help="where the Markdown report goes (default: %(default)s); '-' for none")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, SQLite files)")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


def parse_shape(text: str) -> tuple[int, int]:
    workers, _, threads = text.partition("x")
    if not (workers.isdigit() and threads.isdigit() and int(workers) > 0 and int(threads) > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected processes x threads, e.g. 2x8")
    return int(workers), int(threads)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    config = Config.for_mode("quick" if args.quick else "full", args.pg, workers=args.workers, rounds=args.rounds,
                             duration=args.duration, burst_workers=args.burst_workers,
                             baseline_worker_class=args.baseline_worker_class, ours_shape=args.ours_shape,
                             ours_server=args.ours_server)
    config.sections = tuple(s for s in SECTIONS if s in args.only.split(","))
    config.databases = tuple(d for d in ("postgresql", "sqlite") if d in args.db.split(","))
    command = "bench/run" + ("" if not argv else " " + shlex.join(argv))
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    started = time.monotonic()
    load_start = _loadavg()
    code_at_start = code_version()
    tmp = Path(tempfile.mkdtemp(prefix="ncc-bench-"))
    ctx = Context(config=config, tmp=tmp, sqlite_dir=tmp)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    status = 0
    print(f"nc-connector bench, {config.mode} mode; temp dir {tmp}", flush=True)
    try:
        if "postgresql" in config.databases:
            ctx.pg = PgDatabase(config.pg_admin_url, f"ncc_bench_{os.getpid()}")
            ctx.pg.create()
            if find_pgbench() is None:
                ctx.note("pgbench not found: the PostgreSQL ceiling is not measured")
        with procs.MemorySampler():
            traffic.run(ctx)
            ingest.run(ctx)
            burst.run(ctx)
    except KeyboardInterrupt:
        ctx.note("interrupted: the figures are incomplete")
        status = 130
    except Exception as exc:
        ctx.note(f"the bench failed: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        status = 1
    finally:
        procs.stop_all()
        report.memory_rows(ctx)
        settings = settings_lines(ctx, code_at_start)
        text = report.render(ctx, command, started_at, time.monotonic() - started, (load_start, _loadavg()),
                             settings)
        if ctx.pg is not None:
            try:
                ctx.pg.drop()
            except Exception as exc:
                print(f"could not drop {ctx.pg.name}: {exc}", file=sys.stderr)
        if args.keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(report.table(ctx.rows))
    if args.output != "-":
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"\nwritten to {out}")
    return status


def settings_lines(ctx: Context, code_at_start: str) -> list[str]:
    cfg = ctx.config
    workers = ", ".join(f"{k}: {v}" for k, v in ctx.chosen_workers.items()) or "(section 1 not run)"
    return [
        f"code: {code_at_start}" + ("" if code_version() == code_at_start else
                                     f" at the start; at the end: {code_version()} (changed during the run)"),
        f"servers: ours in section 0 traffic as serve resolves it ({traffic.describe_serving(cfg)}); in sections "
        f"2 dedup, 3 burst and 4 e2e as serve resolves it too ({traffic.describe_serving(cfg, False)}); "
        f"in section 1 ingest under granian's WSGI interface, {SERVE_THREADS} threads per worker, web workers "
        f"per database: {workers}"
        + (" (the best of a sweep over " + "/".join(map(str, cfg.sweep)) + " for ours)"
           if cfg.workers is None and cfg.mode == "full" else "")
        + f"; section 0 servers: granian and gunicorn gthread, {SERVE_THREADS} threads, and gunicorn sync; "
        f"the baseline under gunicorn -k {cfg.baseline_worker_class} (timeout 30, graceful 10, no access log)",
        "ours: `nc-connector serve --no-worker --workers N --threads T` (defaults otherwise: log level INFO, a pooled "
        "connection per thread + 2, "
        "no pre-ping, per-delivery log lines at DEBUG); baseline: `gunicorn ... bench.baseline_app:create_app()` "
        "(bench/baseline_app.py)",
        f"load: {cfg.senders} concurrent senders ({cfg.processes} processes), HTTP/1.1 keep-alive, every body "
        f"distinct and signed when sent; {cfg.warmup:g} s warm-up then {cfg.duration:g} s measured; "
        f"{cfg.rounds} round(s) per database alternating who goes first; the median run of each side is reported; "
        f"closed loop, and in section 0 traffic also paced at {traffic.PACED_SHARE:.0%} of the baseline's closed-loop "
        "rate for both sides",
        "ack latency: from the first byte sent to the last byte of the answer, at the sender (paced: from when the "
        "request was due, if it was sent late)",
        f"dedup: fingerprints pre-filled to {cfg.dedup_sizes[0]:,} (expired, then pruned under load with "
        f"`nc-connector prune`, retention 7d) and {cfg.dedup_sizes[1]:,} rows",
        f"burst: {cfg.burst_ncs:,} NCs x {cfg.burst_per_nc} deliveries (6 distinct changes incl. a same-second "
        f"pair and a comment, {cfg.burst_per_nc - 6} true duplicates) sent by {cfg.senders} senders to "
        f"`serve --no-worker` + {cfg.burst_workers} `nc-connector worker`; Jira sandbox latency "
        f"{cfg.jira_latency * 1000:.0f} ms; 429 run: {cfg.budget_ncs:,} NCs, budget {cfg.budget[0]} writes per "
        f"{cfg.budget[1]:g} s, enrichment from the Qualio stub",
        f"e2e: {cfg.e2e_probes} probes one at a time (new NC, then its update), 0.2-0.8 s apart; worker poll "
        f"interval left at its default (0.5 s)",
    ]


def code_version() -> str:
    """The commit measured, and connector/ files that differ from it (read-only git commands)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "connector").splitlines()]
    return f"git HEAD {head}" + (f"; connector/ differs from it in: {', '.join(dirty)}" if dirty else
                                 "; connector/ unmodified")


def _loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
