"""Sections 1 and 2: ingest vs the minimal baseline, the database's own ceiling, dedup at scale, prune."""

from __future__ import annotations

import json
import multiprocessing as mp
import re
import sqlite3
import subprocess
import sys
import time
from typing import Any

from bench import procs
from bench.context import HOST, Context, IngestFigure
from bench.dbs import PgDatabase, SqliteDatabase, run_pgbench
from bench.loadgen import LoadRun, window
from bench.payloads import IngestFactory, nc_payload
from connector.ops.serving import THREADS as SERVE_THREADS

LABEL = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}


def fmt_rate(value: float) -> str:
    return f"{value:,.0f} req/s"


def fmt_ms(value: float) -> str:
    return f"{value:,.1f} ms"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def describe(fig: IngestFigure) -> str:
    w = fig.window
    others = {s: n for s, n in w.statuses.items() if not 200 <= s < 300}
    extra = f", non-2xx {others}" if others else ""
    return (f"{w.rps:,.0f} req/s, p50 {w.p50_ms:.1f} ms, p99 {w.p99_ms:.1f} ms, web CPU {fig.web_cpu_ms:.2f} ms/req"
            f"{extra}")


# -- section 1 -------------------------------------------------------------------------------------


def choose_workers(ctx: Context, kind: str) -> int:
    """The web-worker count at which *our* service ingests fastest (2 interleaved passes per setting)."""
    cfg = ctx.config
    if cfg.workers is not None:
        return cfg.workers
    if cfg.mode == "quick":
        return 4
    db = ctx.database(kind)
    best: dict[int, float] = {}
    for _ in range(2):
        for workers in cfg.sweep:
            db.reset()
            proc, port = ctx.start_ours(db.url, workers, f"sweep-{kind}-{workers}", server="granian",
                                         threads=SERVE_THREADS)
            fig = ctx.ingest(proc, port, duration=cfg.sweep_duration)
            proc.stop()
            best[workers] = max(best.get(workers, 0.0), fig.window.rps)
            ctx.details.append(f"sweep {kind} workers={workers}: {describe(fig)}")
            print(f"    sweep {kind} --workers {workers}: {fig.window.rps:,.0f} req/s", flush=True)
    chosen = max(best, key=lambda w: best[w])
    ctx.add("1 ingest", f"{LABEL[kind]}: web workers sweep (ours, best of 2 x {cfg.sweep_duration:.0f} s)",
            ", ".join(f"{w}: {r:,.0f}" for w, r in best.items()) + f" -> {chosen}")
    return chosen


def median_figure(figures: list[IngestFigure]) -> IngestFigure:
    """The run with the median throughput (the lower middle one for an even count)."""
    ordered = sorted(figures, key=lambda f: f.window.rps)
    return ordered[(len(ordered) - 1) // 2]


def section_ingest(ctx: Context, kind: str) -> dict[str, Any]:
    cfg = ctx.config
    db = ctx.database(kind)
    workers = choose_workers(ctx, kind)
    ctx.chosen_workers[kind] = workers
    ours: list[IngestFigure] = []
    base: list[IngestFigure] = []
    for r in range(cfg.rounds):
        order = ("ours", "baseline") if r % 2 == 0 else ("baseline", "ours")  # alternate who goes first
        for who in order:
            db.reset()
            if who == "ours":
                proc, port = ctx.start_ours(db.url, workers, f"ingest-{kind}-ours-{r}", server="granian",
                                             threads=SERVE_THREADS)
            else:
                proc, port = ctx.start_baseline(db.url, workers, f"ingest-{kind}-baseline-{r}")
            fig = ctx.ingest(proc, port)
            proc.stop()
            (ours if who == "ours" else base).append(fig)
            ctx.details.append(f"ingest {kind} round {r} {who}: {describe(fig)}")
            print(f"    {kind} round {r} {who:8s}: {describe(fig)}", flush=True)
    o, b = median_figure(ours), median_figure(base)
    label = LABEL[kind]
    how = f"median of {cfg.rounds}" if cfg.rounds > 1 else "1 run"
    ctx.add("1 ingest", f"{label}: throughput, 16 senders ({how})", fmt_rate(o.window.rps),
            fmt_rate(b.window.rps), f"{ratio(o.window.rps, b.window.rps):.2f}x", ">= 1.0x",
            verdict(o.window.rps >= b.window.rps))
    ctx.add("1 ingest", f"{label}: ack latency p50", fmt_ms(o.window.p50_ms), fmt_ms(b.window.p50_ms),
            f"{ratio(o.window.p50_ms, b.window.p50_ms):.2f}x")
    ctx.add("1 ingest", f"{label}: ack latency p99", fmt_ms(o.window.p99_ms), fmt_ms(b.window.p99_ms),
            f"{ratio(o.window.p99_ms, b.window.p99_ms):.2f}x", "<= 1.5x",
            verdict(o.window.p99_ms <= 1.5 * b.window.p99_ms))
    cpu_o = sorted(f.web_cpu_ms for f in ours)[(len(ours) - 1) // 2]
    cpu_b = sorted(f.web_cpu_ms for f in base)[(len(base) - 1) // 2]
    ctx.add("1 ingest", f"{label}: web-worker CPU per request (median; robust to machine noise)",
            f"{cpu_o:.2f} ms", f"{cpu_b:.2f} ms", f"{ratio(cpu_o, cpu_b):.2f}x")
    if cfg.rounds > 1:
        best = ratio(max(f.window.rps for f in ours), max(f.window.rps for f in base))
        ctx.add("1 ingest", f"{label}: every round, req/s (ratio of the best runs {best:.2f}x)",
                ", ".join(f"{f.window.rps:,.0f}" for f in ours), ", ".join(f"{f.window.rps:,.0f}" for f in base))
    ceiling(ctx, kind, db, o)
    return {"ours": o, "baseline": b}


def ceiling(ctx: Context, kind: str, db: PgDatabase | SqliteDatabase, ours: IngestFigure) -> None:
    """The database's own ceiling for the same transaction: pgbench, or sqlite3 in a tight loop."""
    cfg = ctx.config
    payload = json.dumps(nc_payload("NC-2026-000001", "nc.updated", "2026-01-05T10:15:32Z", 1))
    if isinstance(db, PgDatabase):
        results = {}
        for notify in (False, True):
            db.reset()
            results[notify] = run_pgbench(db, payload, cfg.senders, cfg.duration, notify=notify)
        plain, with_notify = results[False], results[True]
        ctx.add("1 ingest", "PostgreSQL: pgbench, same 2-INSERT transaction (16 clients)",
                f"{plain.tps:,.0f} tps, p50 {plain.p50_ms:.1f} ms, p99 {plain.p99_ms:.1f} ms")
        ctx.add("1 ingest", "PostgreSQL: pgbench, same transaction + pg_notify in it (as store.py did until the "
                "wake-up moved out of the transaction, connector/receive/notify.py)",
                f"{with_notify.tps:,.0f} tps, p50 {with_notify.p50_ms:.1f} ms, p99 {with_notify.p99_ms:.1f} ms",
                f"{plain.tps:,.0f} tps", f"{ratio(with_notify.tps, plain.tps):.2f}x")
        ctx.add("1 ingest", "PostgreSQL: ours (new deliveries) as a share of the database ceiling",
                fmt_rate(ours.window.rps), f"{plain.tps:,.0f} tps", f"{ratio(ours.window.rps, plain.tps):.2f}x")
        ctx.add("1 ingest", "PostgreSQL: ours (new deliveries) vs the ceiling with NOTIFY", fmt_rate(ours.window.rps),
                f"{with_notify.tps:,.0f} tps", f"{ratio(ours.window.rps, with_notify.tps):.2f}x", ">= 0.5x",
                verdict(ours.window.rps >= 0.5 * with_notify.tps))
        ctx.details.append(f"pgbench command: {plain.command}")
        db.reset()
        return
    tps = sqlite_ceiling(db, processes=4, seconds=cfg.duration, payload=payload)
    ctx.add("1 ingest", "SQLite: sqlite3 loop, same transaction (4 processes, WAL, synchronous=FULL)",
            f"{tps:,.0f} tps")
    ctx.add("1 ingest", "SQLite: ours as a share of that ceiling", fmt_rate(ours.window.rps), f"{tps:,.0f} tps",
            f"{ratio(ours.window.rps, tps):.2f}x")


def _sqlite_loop(path: str, seconds: float, payload: str, seed: int, out: Any) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    done, i = 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        i += 1
        now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("INSERT INTO fingerprints (fingerprint, webhook_id, nc_id, event_type, first_seen_at, "
                           "last_seen_at, times_seen) VALUES (lower(hex(randomblob(32))), ?, 'NC-2026-000001', "
                           "'nc.updated', ?, ?, 1) ON CONFLICT DO NOTHING RETURNING id",
                           (f"msg_sq_{seed}_{i}", now, now)).fetchone()
        if row is not None:
            conn.execute("INSERT INTO deliveries (fingerprint, webhook_id, nc_id, event_type, event_timestamp, "
                         "payload, received_at, status, attempts, next_attempt_at) "
                         "VALUES (lower(hex(randomblob(32))), ?, 'NC-2026-000001', 'nc.updated', ?, ?, ?, "
                         "'queued', 0, ?) RETURNING id",
                         (f"msg_sq_{seed}_{i}", now, payload, now, now)).fetchone()
        conn.execute("COMMIT")
        done += 1
    conn.close()
    out.put(done)


def sqlite_ceiling(db: SqliteDatabase, processes: int, seconds: float, payload: str) -> float:
    db.reset()
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=_sqlite_loop, args=(str(db.path), seconds, payload, k, out), daemon=True)
               for k in range(processes)]
    for w in workers:
        w.start()
    total: int = sum(out.get(timeout=seconds + 60) for _ in workers)
    for w in workers:
        w.join(10)
    db.reset()
    return total / seconds


# -- section 2 -------------------------------------------------------------------------------------


def section_dedup(ctx: Context, kind: str) -> None:
    """Ingest into a pre-filled fingerprint log vs into an empty one, measured alternately (the machine's
    noise drifts over minutes, so each size is compared with empty runs made next to it)."""
    cfg = ctx.config
    filled, empty = ctx.database(kind, "a"), ctx.database(kind, "b")
    workers = cfg.workers  # None: as serve resolves it
    label = LABEL[kind]
    # Three alternating rounds in full mode, so the median is a middle run and not the lower of two:
    # one run slowed by the shared machine no longer decides the ratio.
    rounds = 3 if cfg.mode == "full" else 1
    filled.reset()

    def measure(db: PgDatabase | SqliteDatabase, name: str) -> IngestFigure:
        if db is empty:
            db.reset()
        proc, port = ctx.start_ours(db.url, workers, f"dedup-{kind}-{name}")
        fig = ctx.ingest(proc, port)
        proc.stop()
        rows = db.fingerprint_rows()
        ctx.details.append(f"dedup {kind} {name} ({rows:,} fingerprints after the run): {describe(fig)}")
        print(f"    {kind} dedup {name}: {describe(fig)}", flush=True)
        return fig

    def compare(size: int, target: str) -> list[IngestFigure]:
        with_rows: list[IngestFigure] = []
        without: list[IngestFigure] = []
        for r in range(rounds):
            order = (filled, empty) if r % 2 == 0 else (empty, filled)
            for db in order:
                if db is filled:
                    with_rows.append(measure(filled, f"{size:,} rows"))
                else:
                    without.append(measure(empty, "empty"))
        w, e = median_figure(with_rows).window, median_figure(without).window
        ok = verdict(w.rps >= 0.9 * e.rps) if target else ""
        ctx.add("2 dedup", f"{label}: ingest with {size:,} fingerprints vs empty (alternating, "
                f"{'median of ' + str(rounds) if rounds > 1 else '1 run'} each)",
                f"{w.rps:,.0f} req/s, p99 {w.p99_ms:.1f} ms", f"{e.rps:,.0f} req/s, p99 {e.p99_ms:.1f} ms",
                f"{ratio(w.rps, e.rps):.2f}x", target, ok)
        return with_rows

    small, large = cfg.dedup_sizes
    # The smaller pre-fill is expired (last seen 30 days ago): measured, then pruned under load.
    took = filled.prefill(small, expired=True, salt=ctx.tag("pf"))
    ctx.details.append(f"prefill {kind} {small:,} expired rows: {took:.1f} s")
    at_small = compare(small, "")
    prune_under_load(ctx, kind, filled, workers, median_figure(at_small))
    took = filled.prefill(large, expired=False, salt=ctx.tag("pf"))
    ctx.details.append(f"prefill {kind} {large:,} rows: {took:.1f} s")
    print(f"    prefilled {large:,} rows in {took:.0f} s", flush=True)
    compare(large, ">= 0.9x")
    filled.reset()
    empty.reset()


def prune_under_load(ctx: Context, kind: str, db: PgDatabase | SqliteDatabase, workers: int | None,
                     reference: IngestFigure) -> None:
    cfg = ctx.config
    label = LABEL[kind]
    expired = db.fingerprint_rows()
    proc, port = ctx.start_ours(db.url, workers, f"prune-{kind}")
    run = LoadRun(HOST, port, IngestFactory(HOST, port, ctx.tag("pr")), senders=cfg.senders,
                  processes=cfg.processes, duration=cfg.drain_timeout).start()
    time.sleep(max(0.0, run.t0 - time.time()) + cfg.warmup + 1.0)
    env = ctx.ours_env(db.url, NC_CONNECTOR_FINGERPRINT_RETENTION="7d", NC_CONNECTOR_LOG_LEVEL="WARNING")
    prune = procs.start(f"prune-{kind}-cli", procs.python("-m", "connector", "prune"), env, ctx.logs,
                        role="ours-cli", cwd=ctx.tmp)
    started = time.time()
    try:
        prune.popen.wait(cfg.drain_timeout)
    except subprocess.TimeoutExpired:
        prune.stop()
    ended = time.time()
    time.sleep(1.0)
    run.stop()
    result = run.wait()
    proc.stop()
    output = prune.tail(5)
    match = re.search(r"pruned (\d+) fingerprints", output)
    pruned = int(match.group(1)) if match else -1
    during = window(result, started, ended)
    before = window(result, result.t0 + cfg.warmup, started)
    ref = reference.window
    ctx.add("2 dedup", f"{label}: prune of {expired:,} expired fingerprints under ingest load (time)",
            f"{ended - started:.1f} s ({pruned:,} pruned, exit {prune.popen.returncode})")
    ctx.add("2 dedup", f"{label}: ingest p99 while prune runs (vs same table, no prune)",
            f"{during.p99_ms:.1f} ms ({during.rps:,.0f} req/s)", f"{ref.p99_ms:.1f} ms ({ref.rps:,.0f} req/s)",
            f"{ratio(during.p99_ms, ref.p99_ms):.2f}x", "<= 2x", verdict(during.p99_ms <= 2 * ref.p99_ms))
    ctx.details.append(f"prune {kind}: before prune in the same run {before.rps:,.0f} req/s "
                       f"p99 {before.p99_ms:.1f} ms; "
                       f"during {during.rps:,.0f} req/s p99 {during.p99_ms:.1f} ms max {during.max_ms:.0f} ms; "
                       f"output: {output.strip()!r}")
    if isinstance(db, PgDatabase):
        db.settle()


def run(ctx: Context) -> None:
    for kind in ctx.config.databases:
        if "ingest" in ctx.config.sections:
            print(f"== 1 ingest ({kind})", flush=True)
            section_ingest(ctx, kind)
        if "dedup" in ctx.config.sections:
            print(f"== 2 dedup at scale ({kind})", flush=True)
            section_dedup(ctx, kind)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run the bench with bench/run")
