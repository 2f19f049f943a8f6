"""Sections 3 and 4: a burst drained into the Jira sandbox, and delivery-to-Jira latency.

The stack of one run: the Jira sandbox (`nc-connector sandbox`, 50 ms injected latency), our web
tier (`nc-connector serve --no-worker`), N sync workers (`nc-connector worker`) and, with
enrichment on, the Qualio stub (bench/qualio_stub.py). The sandbox's request log is read
incrementally while the run goes on (it keeps only the newest 10,000 requests), so every Jira
call is counted and every Retry-After can be checked.
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import procs
from bench.context import HOST, Context
from bench.dbs import PgDatabase, SqliteDatabase
from bench.ingest import verdict
from bench.loadgen import LoadResult, LoadRun, percentile
from bench.payloads import (
    JIRA_PRIORITY,
    JIRA_STATUS,
    SECRET,
    Burst,
    ListFactory,
    expected_final,
    http_request,
    make_burst,
    nc_payload,
    qualio_record,
    rfc3339,
)

LABEL = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
WRITE_METHODS = ("POST", "PUT", "DELETE")
REVISION = re.compile(r"\(revision (\d+)\)")
SUMMARY_NC = re.compile(r"^\[([^\]]+)\]")
LOWER_BOUND_WRITES_PER_NC = 4  # create + remote link + the one comment + the transition to the final status


def http_json(method: str, url: str, payload: Any = None, timeout: float = 30.0) -> Any:
    import urllib.request

    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def is_write(record: dict[str, Any]) -> bool:
    return record["method"] in WRITE_METHODS and record["path"].startswith("/rest/api/2/issue")


class RequestLog:
    """Every request the sandbox saw, fetched incrementally (records still in flight are re-read)."""

    def __init__(self, url: str, interval: float = 0.5) -> None:
        self.url = url
        self.interval = interval
        self.records: dict[int, dict[str, Any]] = {}
        self._complete = 0  # every seq <= this is answered and stored
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-log", daemon=True)
        self.errors = 0

    def poll(self) -> None:
        try:
            page = http_json("GET", f"{self.url}/_sandbox/requests?since={self._complete}")
        except OSError:
            self.errors += 1
            return
        for record in page["requests"]:
            self.records[record["seq"]] = record
        seq = self._complete
        while seq + 1 in self.records and self.records[seq + 1].get("answered") is not None:
            seq += 1
        self._complete = seq

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def start(self) -> RequestLog:
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(10)
        for _ in range(20):  # bounded: wait for the last in-flight answers
            self.poll()
            if all(r.get("answered") is not None for r in self.records.values()):
                break
            time.sleep(0.2)
        return [self.records[s] for s in sorted(self.records)]

    def since(self, seq: int) -> list[dict[str, Any]]:
        self.poll()
        return [r for s, r in sorted(self.records.items()) if s > seq]

    @property
    def last_seq(self) -> int:
        return max(self.records, default=0)


def retry_after_violations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sandbox's own rule over the complete log: any request arriving after a Retry-After answer
    was sent and before it elapsed (global: Jira's limits are per tenant)."""
    found = []
    for index, limited in enumerate(records):
        if limited.get("retryAfter") is None or limited.get("answered") is None:
            continue
        not_before = limited["answered"] + limited["retryAfter"]
        for later in records[index + 1:]:
            if later["time"] >= not_before:
                break
            if later["time"] >= limited["answered"]:
                found.append({"limited": limited["seq"], "request": later["seq"], "method": later["method"],
                              "path": later["path"], "early": round(not_before - later["time"], 3)})
    return found


@dataclass
class Stack:
    sandbox: procs.Proc
    sandbox_url: str
    web: procs.Proc
    port: int
    workers: list[procs.Proc]
    stub: procs.Proc | None = None
    stub_url: str | None = None

    def stop(self) -> None:
        for proc in [*self.workers, self.web, self.sandbox, *([self.stub] if self.stub else [])]:
            proc.stop()


def start_stack(ctx: Context, db_url: str, name: str, workers: int, web_workers: int | None, latency: float,
                records: dict[str, Any] | None = None, extra_env: dict[str, str] | None = None) -> Stack:
    sandbox_port = procs.free_port()
    sandbox = procs.start(f"{name}-sandbox", procs.python("-m", "connector", "sandbox", "--host", HOST, "--port",
                                                          str(sandbox_port), "--quiet", "--latency", str(latency)),
                          {}, ctx.logs, cwd=ctx.tmp)
    sandbox_url = f"http://{HOST}:{sandbox_port}"
    procs.wait_ready(sandbox, f"{sandbox_url}/_sandbox/health")
    env = {"NC_CONNECTOR_JIRA_URL": sandbox_url, "NC_CONNECTOR_JIRA_PAT": "sandbox-pat",
           "NC_CONNECTOR_JIRA_PROJECT": "QA", **(extra_env or {})}
    stub = stub_url = None
    if records is not None:
        path = ctx.tmp / f"{name}-qualio-records.json"
        path.write_text(json.dumps(records))
        stub_port = procs.free_port()
        stub = procs.start(f"{name}-qualio-stub", procs.python("-m", "bench.qualio_stub", "--host", HOST, "--port",
                                                               str(stub_port), "--records", str(path)),
                           {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}, ctx.logs,
                           cwd=Path(__file__).resolve().parent.parent)
        stub_url = f"http://{HOST}:{stub_port}"
        procs.wait_ready(stub, f"{stub_url}/_stub/health")
        # Qualio allows 200 requests/min per key; every worker shares that one budget through the database.
        # Reconcile off: this run measures enrichment, and the stub serves event records only (no templates).
        env.update(NC_CONNECTOR_QUALIO_URL=stub_url, NC_CONNECTOR_QUALIO_API_KEY="bench-qualio-key",
                   NC_CONNECTOR_QUALIO_MAX_PER_MINUTE="200", NC_CONNECTOR_RECONCILE_INTERVAL="0")
    web, port = ctx.start_ours(db_url, web_workers, f"{name}-web", env)
    sync = [procs.start(f"{name}-worker-{k}", procs.python("-m", "connector", "worker"), ctx.ours_env(db_url, **env),
                        ctx.logs, role="ours-sync-worker", cwd=ctx.tmp) for k in range(workers)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all("worker started" in w.tail(50) for w in sync):
        for w in sync:
            if not w.alive():
                raise RuntimeError(f"{w.name} exited: {w.tail()}")
        time.sleep(0.1)
    return Stack(sandbox, sandbox_url, web, port, sync, stub, stub_url)


def wait_drained(ctx: Context, db: PgDatabase | SqliteDatabase, stack: Stack, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.queue_state().pending == 0:
            return True
        if not any(w.alive() for w in stack.workers):
            ctx.note("every sync worker exited before the queue drained")
            return False
        time.sleep(0.25)
    return False


# -- reading the log ---------------------------------------------------------------------------------


def key_to_nc(issues: list[dict[str, Any]]) -> dict[str, str]:
    mapping = {}
    for issue in issues:
        for label in issue["fields"].get("labels", []):
            if label.startswith("qualio-nc-"):
                mapping[issue["key"]] = label.removeprefix("qualio-nc-")
    return mapping


def field_writes(records: list[dict[str, Any]], keys: dict[str, str]) -> dict[str, list[tuple[float, int]]]:
    """NC -> [(arrival time, revision)] of each successful create/edit whose fields carry a revision."""
    out: dict[str, list[tuple[float, int]]] = {}
    for r in records:
        if r["method"] not in ("POST", "PUT") or not (r.get("status") and 200 <= r["status"] < 300):
            continue
        body = r.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
            continue
        fields = body["fields"]
        nc = None
        if r["method"] == "POST" and r["path"] == "/rest/api/2/issue":
            match = SUMMARY_NC.match(str(fields.get("summary", "")))
            nc = match.group(1) if match else None
        elif r["method"] == "PUT":
            nc = keys.get(r["path"].rsplit("/", 1)[-1])
        revision = REVISION.search(str(fields.get("description", "")))
        if nc and revision:
            out.setdefault(nc, []).append((r["time"], int(revision.group(1))))
    for writes in out.values():
        writes.sort()
    return out


def e2e_latencies(sent: list[tuple[str, int, float, float]], writes: dict[str, list[tuple[float, int]]],
                  ) -> tuple[list[float], int]:
    """For each accepted delivery (nc, revision, sent at, acknowledged at): seconds from its 202 to the
    first Jira write issued after it was sent that carries its revision or a newer one. Deliveries
    never reflected (superseded before they arrived) are counted apart."""
    out: list[float] = []
    unmatched = 0
    for nc, revision, sent_at, acked_at in sent:
        match = next((t for t, rev in writes.get(nc, []) if t >= sent_at and rev >= revision), None)
        if match is None:
            unmatched += 1
        else:
            out.append(match - acked_at)
    return out, unmatched


def _revision(text: Any) -> int | None:
    match = REVISION.search(str(text))
    return int(match.group(1)) if match else None


def verify(burst: Burst, final: dict[str, dict[str, Any]], issues: list[dict[str, Any]]) -> list[str]:
    """Exactly one issue per NC, in the NC's final state, with its one comment."""
    problems: list[str] = []
    by_nc: dict[str, list[dict[str, Any]]] = {}
    for issue in issues:
        for label in issue["fields"].get("labels", []):
            if label.startswith("qualio-nc-"):
                by_nc.setdefault(label.removeprefix("qualio-nc-"), []).append(issue)
    for nc in burst.ncs:
        found = by_nc.get(nc, [])
        if len(found) != 1:
            problems.append(f"{nc}: {len(found)} issues")
            continue
        fields, want = found[0]["fields"], final.get(nc)
        if want is None:
            problems.append(f"{nc}: no accepted delivery")
            continue
        checks = {
            "summary": (fields.get("summary"), f"[{nc}] {want['title']}"),
            "status": ((fields.get("status") or {}).get("name"), JIRA_STATUS[want["status"]]),
            "priority": ((fields.get("priority") or {}).get("name"), JIRA_PRIORITY[want["severity"]]),
            "revision": (_revision(fields.get("description")), _revision(want["description"])),
            "comments": (len((fields.get("comment") or {}).get("comments", [])), burst.comments_per_nc),
        }
        for name, (got, expected) in checks.items():
            if got != expected:
                problems.append(f"{nc}: {name} is {got!r}, expected {expected!r}")
    return problems


# -- section 3 ---------------------------------------------------------------------------------------


@dataclass
class BurstOutcome:
    drain_s: float
    send_s: float
    drained: bool
    accepted: int
    duplicates: int
    other: dict[int, int]
    writes_ok: int
    write_calls: int
    calls: int
    stats: dict[str, Any]
    violations: list[dict[str, Any]]
    sandbox_violations: int
    problems: list[str]
    dead: int
    e2e: list[float] = field(default_factory=list)
    e2e_unmatched: int = 0
    qualio: dict[str, Any] | None = None
    log_gaps: int = 0


def run_burst(ctx: Context, kind: str, name: str, ncs: int, budget: tuple[int, float] | None,
              enrich: bool) -> BurstOutcome:
    cfg = ctx.config
    db = ctx.database(kind)
    db.reset()
    burst = make_burst(ncs, cfg.burst_per_nc, seed=ncs, tag=name[:1])
    last_original: dict[str, dict[str, Any]] = {}
    for item in burst.items:
        if item.duplicate_of is None:
            payload = json.loads(item.body)
            if item.nc_id not in last_original or payload["timestamp"] >= last_original[item.nc_id]["timestamp"]:
                last_original[item.nc_id] = payload
    records = {nc: qualio_record(p) for nc, p in last_original.items()} if enrich else None
    web_workers = cfg.workers  # None: as serve resolves it
    stack = start_stack(ctx, db.url, name, cfg.burst_workers, web_workers, cfg.jira_latency, records)
    try:
        if budget is not None:
            http_json("POST", f"{stack.sandbox_url}/_sandbox/faults",
                      {"budget": {"limit": budget[0], "window": budget[1]}})
        log = RequestLog(stack.sandbox_url).start()
        items = [(item.body, item.webhook_id) for item in burst.items]
        result = LoadRun(HOST, stack.port, ListFactory(HOST, stack.port, items), senders=cfg.senders,
                         processes=cfg.processes, total=len(items), keep_bodies=True).start().wait()
        drained = wait_drained(ctx, db, stack, cfg.drain_timeout)
        state = db.queue_state()
        time.sleep(0.5)
        records_log = log.stop()
        stats = http_json("GET", f"{stack.sandbox_url}/_sandbox/stats")
        issues = http_json("GET", f"{stack.sandbox_url}/_sandbox/issues")["issues"]
        qualio = http_json("GET", f"{stack.stub_url}/_stub/stats") if stack.stub_url else None
        for proc in [*stack.workers, stack.web]:
            proc.sample_memory()
    finally:
        stack.stop()
    statuses = Counter(result.status)
    delivery_ids: dict[int, int] = {}
    for index, body in result.bodies.items():
        if body.startswith(b"{") and b'"accepted"' in body:
            delivery_ids[index] = int(json.loads(body)["deliveryId"])
    final = expected_final(burst, delivery_ids)
    problems = verify(burst, final, issues)
    seqs = sorted(r["seq"] for r in records_log)
    gaps = (seqs[-1] - len(seqs)) if seqs else 0
    outcome = BurstOutcome(
        drain_s=((state.last_finished or time.time()) - result.t0), send_s=result.t_end - result.t0,
        drained=drained, accepted=statuses.get(202, 0), duplicates=statuses.get(200, 0),
        other={s: n for s, n in statuses.items() if s not in (200, 202)},
        writes_ok=sum(1 for r in records_log if is_write(r) and r.get("status") and 200 <= r["status"] < 300),
        write_calls=sum(1 for r in records_log if is_write(r)), calls=len(records_log), stats=stats,
        violations=retry_after_violations(records_log), sandbox_violations=int(stats.get("retryAfterViolations", 0)),
        problems=problems, dead=state.counts.get("dead", 0), qualio=qualio, log_gaps=gaps)
    if not enrich:
        keys = key_to_nc(issues)
        writes = field_writes(records_log, keys)
        sent = [(burst.items[i].nc_id, burst.items[i].revision, s, s + lat)
                for i, s, lat, st in zip(result.index, result.start, result.latency, result.status, strict=True)
                if st == 202]
        outcome.e2e, outcome.e2e_unmatched = e2e_latencies(sent, writes)
    ctx.details.append(f"burst {name} {kind}: stats {json.dumps(stats)}")
    if problems:
        ctx.details.append(f"burst {name} {kind}: {len(problems)} problems, first: {problems[:5]}")
    if outcome.violations:
        ctx.details.append(f"burst {name} {kind}: Retry-After violations, first: {outcome.violations[:5]}")
    return outcome


def report_burst(ctx: Context, kind: str, ncs: int, out: BurstOutcome, label: str) -> None:
    cfg = ctx.config
    deliveries = ncs * cfg.burst_per_nc
    section = "3 burst"
    ok = out.drained and not out.problems and out.dead == 0
    ctx.add(section, f"{label}: {deliveries:,} deliveries / {ncs:,} NCs, {cfg.burst_workers} sync workers: drain time",
            f"{out.drain_s:.1f} s (sending took {out.send_s:.1f} s)", "", "", "drained, state correct",
            verdict(ok))
    ctx.add(section, f"{label}: answers (202 new / 200 duplicate / other)",
            f"{out.accepted:,} / {out.duplicates:,} / {sum(out.other.values())}",
            f"{ncs * 6:,} / {ncs * (cfg.burst_per_nc - 6):,} / 0", "", "exact",
            verdict(out.accepted == ncs * 6 and out.duplicates == ncs * (cfg.burst_per_nc - 6) and not out.other))
    s = out.stats
    ctx.add(section, f"{label}: Jira writes per distinct NC state",
            f"{out.writes_ok / max(1, out.accepted):.2f} ({out.writes_ok:,} writes / {out.accepted:,} states)",
            f"lower bound {LOWER_BOUND_WRITES_PER_NC * ncs / max(1, out.accepted):.2f}", "", "<= 1",
            verdict(out.writes_ok <= out.accepted))
    ctx.add(section, f"{label}: Jira writes by kind (creates/edits/transitions/comments/links new+upd)",
            f"{s.get('creates')}/{s.get('updates')}/{s.get('transitions')}/{s.get('comments')}/"
            f"{s.get('remoteLinksCreated')}+{s.get('remoteLinksUpdated')}",
            f"{ncs}/-/{ncs}/{ncs}/{ncs}+0 minimum")
    ctx.add(section, f"{label}: Jira calls per NC (all methods)", f"{out.calls / ncs:.1f}")
    ctx.add(section, f"{label}: issues / state mismatches / dead letters",
            f"{s.get('issues')} / {len(out.problems)} / {out.dead}", f"{ncs} / 0 / 0", "", "exact",
            verdict(s.get("issues") == ncs and not out.problems and out.dead == 0))
    if out.log_gaps:
        ctx.note(f"{label}: {out.log_gaps} sandbox log records were lost before they were read")


def section_burst(ctx: Context, kind: str) -> BurstOutcome:
    cfg = ctx.config
    label = f"{LABEL[kind]}, {cfg.jira_latency * 1000:.0f} ms Jira"
    print(f"== 3 burst ({kind}): {cfg.burst_ncs * cfg.burst_per_nc:,} deliveries", flush=True)
    plain = run_burst(ctx, kind, "burst", cfg.burst_ncs, None, enrich=False)
    report_burst(ctx, kind, cfg.burst_ncs, plain, label)
    limit, window = cfg.budget
    n = cfg.budget_ncs
    print(f"== 3 burst under a 429 budget + enrichment ({kind}): {n * cfg.burst_per_nc:,} deliveries", flush=True)
    budgeted = run_burst(ctx, kind, "quota", n, cfg.budget, enrich=True)
    blabel = f"{LABEL[kind]}, budget {limit} writes/{window:g} s, enrichment on"
    report_burst(ctx, kind, n, budgeted, blabel)
    served = budgeted.stats.get("faultsServed", {}).get("budget", 0)
    ctx.add("3 burst", f"{blabel}: 429s served / requests before Retry-After (sandbox / full log)",
            f"{served} / {budgeted.sandbox_violations} / {len(budgeted.violations)}", "", "", "0 violations",
            verdict(budgeted.sandbox_violations == 0 and not budgeted.violations))
    if budgeted.qualio is not None:
        times = sorted(budgeted.qualio["times"])
        peak = max((sum(1 for t in times[i:] if t - start < 60) for i, start in enumerate(times)), default=0)
        ctx.add("3 burst", f"{blabel}: Qualio fetches per NC (peak per 60 s)",
                f"{budgeted.qualio['requests'] / n:.2f} ({budgeted.qualio['requests']:,} fetches; peak {peak}/min)",
                "Qualio allows 200/min per key", "", "at least 1 per NC, <= 200/min",
                # none at all means enrichment was never asked (the run's NC ids not Qualio event codes, once)
                verdict(budgeted.qualio["requests"] >= n and peak <= 200))
    return plain


# -- section 4 ---------------------------------------------------------------------------------------


def probe_e2e(ctx: Context, stack: Stack, probes: int, tag: str, rng: random.Random) -> tuple[list[float], int]:
    """Send probes one at a time (a new NC, then an update of it, ...); for each, seconds from its 202 to
    the first Jira write carrying its revision. Bounded: 15 s per probe."""
    from bench.loadgen import _Connection

    log = RequestLog(stack.sandbox_url)
    log.poll()
    conn = _Connection(HOST, stack.port)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    out: list[float] = []
    missed = 0
    try:
        for k in range(probes):
            nc = f"NC-2026-{tag}{k // 2:04d}"
            revision = 1 + k % 2
            moment = rfc3339(datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=revision))
            payload = nc_payload(nc, "nc.created" if revision == 1 else "nc.updated", moment, revision,
                                 status="open" if revision == 1 else "under_investigation")
            body = json.dumps(payload).encode()
            since = log.last_seq
            sent = time.time()
            status, _ = conn.request(http_request(HOST, stack.port, body, f"msg_{tag}_{k}", key))
            acked = time.time()
            if status != 202:
                missed += 1
                continue
            found = None
            deadline = time.monotonic() + 15
            while found is None and time.monotonic() < deadline:
                time.sleep(0.02)
                for r in log.since(since):
                    if r["method"] == "POST" and r["path"] == "/rest/api/2/issue" and r.get("status") == 201:
                        summary = str((r.get("body") or {}).get("fields", {}).get("summary", ""))
                        if summary.startswith(f"[{nc}]"):
                            found = r["time"]
                    if r["method"] == "PUT" and r.get("status") == 204 and r["time"] >= sent:
                        desc = str((r.get("body") or {}).get("fields", {}).get("description", ""))
                        if f"(revision {revision})" in desc and f"*Qualio NC:* {nc}\n" in desc:
                            found = r["time"]
                    if found is not None:
                        break
            if found is None:
                missed += 1
            else:
                out.append(found - acked)
            time.sleep(rng.uniform(0.2, 0.8))  # decorrelate from the worker's poll interval
    finally:
        conn.close()
    return out, missed


@dataclass
class DuplicateFactory:
    """Re-sends already accepted bodies with fresh webhook-ids: every answer is a 200 duplicate."""

    host: str
    port: int
    bodies: list[bytes]
    tag: str

    def __post_init__(self) -> None:
        self._key = base64.b64decode(SECRET.removeprefix("whsec_"))

    def build(self, index: int) -> bytes:
        return http_request(self.host, self.port, self.bodies[index % len(self.bodies)], f"msg_{self.tag}_{index}",
                            self._key)


def section_e2e(ctx: Context, kind: str, burst: BurstOutcome | None) -> None:
    cfg = ctx.config
    label = LABEL[kind]
    db = ctx.database(kind)
    db.reset()
    print(f"== 4 end-to-end latency ({kind})", flush=True)
    web_workers = cfg.workers  # None: as serve resolves it
    stack = start_stack(ctx, db.url, "e2e", cfg.burst_workers, web_workers, cfg.jira_latency)
    rng = random.Random(4)
    try:
        idle, idle_missed = probe_e2e(ctx, stack, cfg.e2e_probes, "I", rng)
        # Under load: 16 senders re-send already stored deliveries (each a 200 duplicate: the dedup path
        # at full speed), while the probes go through. The pool is of an event type the worker ignores.
        pool = [json.dumps({**nc_payload(f"NC-2026-L{n:04d}", "nc.viewed", "2026-01-05T10:15:32Z", 0),
                            "viewer": f"user-{n}"}).encode() for n in range(1000)]
        LoadRun(HOST, stack.port, DuplicateFactory(HOST, stack.port, pool, ctx.tag("lp")), senders=cfg.senders,
                processes=cfg.processes, total=len(pool)).start().wait()
        wait_drained(ctx, db, stack, 120)
        run = LoadRun(HOST, stack.port, DuplicateFactory(HOST, stack.port, pool, ctx.tag("ld")), senders=cfg.senders,
                      processes=cfg.processes, duration=cfg.drain_timeout).start()
        time.sleep(cfg.warmup)
        started = time.time()
        loaded, loaded_missed = probe_e2e(ctx, stack, cfg.e2e_probes, "L", rng)
        ended = time.time()
        run.stop()
        result: LoadResult = run.wait()
        for proc in [*stack.workers, stack.web]:
            proc.sample_memory()
    finally:
        stack.stop()
    from bench.loadgen import window

    load = window(result, started, ended)
    ctx.add("4 e2e", f"{label}: 202 -> Jira write, idle ({len(idle)} probes, {idle_missed} missed)",
            f"p50 {percentile(idle, 50):.2f} s, p99 {percentile(idle, 99):.2f} s", "p50 < 0.5 s, p99 < 2 s", "",
            "p50 < 0.5 s, p99 < 2 s",
            verdict(percentile(idle, 50) < 0.5 and percentile(idle, 99) < 2 and not idle_missed))
    ctx.add("4 e2e", f"{label}: 202 -> Jira write, under duplicate load ({load.rps:,.0f} dup answers/s, "
            f"p99 {load.p99_ms:.0f} ms)",
            f"p50 {percentile(loaded, 50):.2f} s, p99 {percentile(loaded, 99):.2f} s ({loaded_missed} missed)")
    if burst is not None and burst.e2e:
        ctx.add("4 e2e", f"{label}: 202 -> Jira write, every delivery of the burst (backlog)",
                f"p50 {percentile(burst.e2e, 50):.1f} s, p99 {percentile(burst.e2e, 99):.1f} s",
                f"{len(burst.e2e):,} matched, {burst.e2e_unmatched} superseded before arrival")


def run(ctx: Context) -> None:
    for kind in ctx.config.databases:
        burst = None
        if "burst" in ctx.config.sections and kind == "postgresql":
            burst = section_burst(ctx, kind)
        if "e2e" in ctx.config.sections:
            section_e2e(ctx, kind, burst)
