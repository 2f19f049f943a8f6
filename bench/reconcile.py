"""Reconcile figure: 10,000 NCs across Qualio's five statuses, 1% changed while their webhooks were lost.

    python -m bench.reconcile                     # 10,000 NCs, 1% changed, 2 sync workers, PostgreSQL (~4 min)
    python -m bench.reconcile --ncs 2000 --changed 0.05 --output -

Set-up (not measured): the Qualio stand-in (`python -m connector.sandbox.qualio`, 200 requests a minute per
key, 429 beyond) with N NCR events spread over the five statuses; the Jira sandbox; a PostgreSQL database of
its own. The NCs that will change are synced first through the real pipeline (webhook-shaped deliveries, two
`nc-connector worker`s enriching from the stand-in); every other NC is recorded as seen by an earlier
reconcile (its mark). Then the changed share gets a new description in the stand-in, with no webhook.

Measured: `nc-connector reconcile` (a process) while the two workers run, until the queue is drained: time,
Qualio requests counted at the stand-in against the lower bound (the pages of the sweep plus one detail per
changed NC), the most requests in any 60 s against the budget (NC_CONNECTOR_QUALIO_MAX_PER_MINUTE, shared by
the reconcile and both workers), 429s, and Jira writes against the changed NCs. Then a second run over the
unchanged Qualio: requests and Jira writes (none). Every process is ended by its PID at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procs
from bench.dbs import PgDatabase
from connector.sandbox.qualio import peak_per_minute

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PG = os.environ.get("NC_CONNECTOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
QUALIO_KEY = "bench-qualio-key"
JIRA_WRITES = ("creates", "updates", "transitions", "comments", "remoteLinksCreated", "remoteLinksUpdated",
               "remoteLinksDeleted", "deletes")
BUDGET = 200


def get(url: str) -> Any:
    status, body = procs.http_get(url, timeout=30)
    if status != 200:
        raise RuntimeError(f"GET {url}: {status}")
    return json.loads(body)


def post(url: str, payload: dict[str, Any]) -> Any:
    import urllib.request

    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def jira_writes(sandbox_url: str) -> int:
    stats = get(f"{sandbox_url}/_sandbox/stats")
    return sum(int(stats.get(name, 0)) for name in JIRA_WRITES)


def drained(engine: Any, timeout: float) -> float:
    from sqlalchemy import func, select

    from connector.models import WAITING, Delivery

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).where(Delivery.status.in_(WAITING))).scalar_one() == 0:
                return time.monotonic()
        time.sleep(0.2)
    raise TimeoutError(f"the queue did not drain in {timeout:.0f} s")


def queue_thin(engine: Any, events: list[dict[str, Any]]) -> None:
    """Webhook-shaped thin deliveries, through the webhook's store."""
    from connector.receive.events import parse_event
    from connector.receive.fingerprint import fingerprint
    from connector.receive.store import record_delivery

    for event in events:
        body = json.dumps({"eventType": "nc.created", "ncId": event["code"],
                           "timestamp": event["modified_at"]}).encode()
        parsed = parse_event(body)
        record_delivery(engine, parsed, body, fingerprint(parsed.payload), None)


def mark_seen(engine: Any, events: list[dict[str, Any]]) -> None:
    """Record the other NCs as an earlier reconcile would have left them (and its watermark, a year back)."""
    from sqlalchemy import insert, update

    from connector.models import ReconcileMark, ReconcileState
    from connector.qualio.drift import parse_time

    now = datetime.now(UTC)
    rows = [{"nc_id": e["code"], "modified_at": parse_time(e["modified_at"]), "status": e["status"], "seen_at": now}
            for e in events]
    with engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(insert(ReconcileMark), rows[start:start + 1000])
        conn.execute(insert(ReconcileState).values(name="qualio"))
        conn.execute(update(ReconcileState).values(watermark=datetime(now.year - 1, 1, 1, tzinfo=UTC)))


def run_reconcile(env: dict[str, str], log_dir: Path) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "connector", "reconcile"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=900, cwd=log_dir)
    (log_dir / "reconcile.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"reconcile exited {done.returncode}: {done.stderr[-2000:]}")
    return time.monotonic() - started, done.stdout


def measure(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    from connector import db

    database = PgDatabase(args.pg, f"ncc_bench_reconcile_{os.getpid()}")
    database.create()
    engine = db.make_engine(database.url)
    try:
        jira_port, qualio_port = procs.free_port(), procs.free_port()
        jira = procs.start("jira-sandbox", procs.python("-m", "connector", "sandbox", "--port", str(jira_port),
                                                        "--quiet"), {}, log_dir, cwd=REPO)
        qualio = procs.start("qualio", procs.python("-m", "connector.sandbox.qualio", "--port", str(qualio_port),
                                                    "--api-key", QUALIO_KEY, "--events", str(args.ncs),
                                                    "--limit-per-minute", str(BUDGET)), {}, log_dir, cwd=REPO)
        jira_url, qualio_url = f"http://127.0.0.1:{jira_port}", f"http://127.0.0.1:{qualio_port}"
        procs.wait_ready(jira, f"{jira_url}/_sandbox/health")
        procs.wait_ready(qualio, f"{qualio_url}/_qualio/health")
        env = {"NC_CONNECTOR_DATABASE_URL": database.url, "NC_CONNECTOR_JIRA_URL": jira_url,
               "NC_CONNECTOR_JIRA_PAT": "sandbox-pat", "NC_CONNECTOR_JIRA_PROJECT": "QA",
               "NC_CONNECTOR_QUALIO_URL": qualio_url, "NC_CONNECTOR_QUALIO_API_KEY": QUALIO_KEY,
               "NC_CONNECTOR_QUALIO_MAX_PER_MINUTE": str(BUDGET), "NC_CONNECTOR_RECONCILE_INTERVAL": "0",
               "NC_CONNECTOR_WORKER_POLL_INTERVAL": "0.2s", "NC_CONNECTOR_LOG_LEVEL": "WARNING",
               "NC_CONNECTOR_QUALIO_PAGE_SIZE": str(args.page_size)}
        events = get(f"{qualio_url}/_qualio/events")["events"]
        step = max(1, round(1 / args.changed))
        changing = [e for i, e in enumerate(events) if i % step == 0]
        others = [e for i, e in enumerate(events) if i % step != 0]
        workers = [procs.start(f"worker-{k}", procs.python("-m", "connector", "worker"), env, log_dir, cwd=log_dir)
                   for k in range(args.workers)]
        print(f"set-up: {len(events)} NCs, syncing the {len(changing)} that will change ...", flush=True)
        queue_thin(engine, changing)
        mark_seen(engine, others)
        drained(engine, 600)
        for event in changing:  # the change, whose webhook is lost
            # The description: a retitle costs two writes with the default mapping (the edit, and the remote
            # link, whose title carries the NC's), which would measure the mapping, not reconcile.
            post(f"{qualio_url}/_qualio/events/{event['code']}",
                 {"description": f"Root cause found for {event['code']}"})
        per_status = {s: sum(1 for e in events if e["status"] == s)
                      for s in ("open", "closed", "imported", "rejected", "cancelled")}
        figures = {"ncs": len(events), "changed": len(changing), "per_status": per_status,
                   "workers": args.workers, "page_size": args.page_size, "budget": BUDGET}
        print("measuring: reconcile with the workers running ...", flush=True)
        figures["first"] = phase(engine, env, log_dir, jira_url, qualio_url)
        print("measuring: a second run over the unchanged Qualio ...", flush=True)
        figures["repeat"] = phase(engine, env, log_dir, jira_url, qualio_url)
        pages = sum(max(1, math.ceil(n / args.page_size)) for n in per_status.values())
        figures["lower_bound"] = {"pages": pages, "details": len(changing), "total": pages + len(changing)}
        for w in workers:
            w.stop()
        return figures
    finally:
        engine.dispose()
        procs.stop_all()
        database.drop()


def phase(engine: Any, env: dict[str, str], log_dir: Path, jira_url: str, qualio_url: str) -> dict[str, Any]:
    writes0, t0 = jira_writes(jira_url), time.time()
    started = time.monotonic()
    seconds, output = run_reconcile(env, log_dir)
    finished = drained(engine, 600)
    stats = get(f"{qualio_url}/_qualio/stats")
    times = [t for t in stats["times"] if t >= t0]
    return {"reconcile_seconds": round(seconds, 1), "until_drained_seconds": round(finished - started, 1),
            "qualio_requests": len(times), "peak_per_minute": peak_per_minute(times),
            "qualio_429s": stats["throttled"], "jira_writes": jira_writes(jira_url) - writes0,
            "summary": output.strip().splitlines()}


def markdown(f: dict[str, Any], command: str) -> str:
    first, repeat, bound = f["first"], f["repeat"], f["lower_bound"]
    statuses = ", ".join(f"{s} {n:,}" for s, n in f["per_status"].items())
    lines = [
        "# Reconcile figure", "",
        f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, this machine (PostgreSQL, loopback).", "",
        f"{f['ncs']:,} NCs ({statuses}); {f['changed']:,} changed in Qualio with their webhooks lost; page size "
        f"{f['page_size']}; {f['workers']} sync workers running; Qualio budget {f['budget']}/min shared by them and "
        "the reconcile; the stand-in answers 429 past 200 in any 60 s.", "",
        "| figure | first run (1% changed) | second run (nothing changed) | target |",
        "| --- | --- | --- | --- |",
        f"| reconcile time | {first['reconcile_seconds']} s | {repeat['reconcile_seconds']} s | |",
        f"| until the changes are in Jira | {first['until_drained_seconds']} s | {repeat['until_drained_seconds']} s"
        " | |",
        f"| Qualio requests (reconcile + enrichment) | {first['qualio_requests']:,} | {repeat['qualio_requests']:,} | "
        f"lower bound {bound['total']:,} ({bound['pages']} pages + {bound['details']} details); second run "
        f"{bound['pages']} |",
        f"| most Qualio requests in any 60 s | {first['peak_per_minute']} | {repeat['peak_per_minute']} | "
        f"<= {f['budget']} |",
        f"| Qualio 429s | {first['qualio_429s']} | {repeat['qualio_429s']} | 0 |",
        f"| Jira writes | {first['jira_writes']:,} | {repeat['jira_writes']:,} | = changed ({f['changed']}); 0 |",
        "", "First run's summary:", "", "```", *first["summary"], "```", "",
        "Second run's summary:", "", "```", *repeat["summary"], "```", "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ncs", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of the NCs changed (default 0.01)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "reconcile-latest.md"),
                        help="Markdown report ('-': none); the figures also go to stdout as JSON")
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ncc-bench-reconcile-") as tmp:
        try:
            figures = measure(args, Path(tmp))
        except BaseException:
            for proc in procs.started():
                print(f"--- {proc.name}\n{proc.tail()}", file=sys.stderr)
            raise
    print(json.dumps({k: v for k, v in figures.items()}, indent=2, default=str))
    command = "python -m bench.reconcile" + ("" if argv is None else " " + " ".join(argv))
    if args.output != "-":
        Path(args.output).write_text(markdown(figures, " ".join(["python -m bench.reconcile", *sys.argv[1:]])
                                              if argv is None else command))
        print(f"report: {args.output}")


if __name__ == "__main__":
    main()
