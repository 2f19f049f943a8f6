"""Reconcile end to end in one process: the Qualio stand-in over loopback, the real queue and worker, a fake
Jira. Each case of the issue with its Jira outcome: missed change, missed create, unchanged, pre-install left
alone, backfilled, closed left out of a default backfill; and a late webhook costs no Jira write."""

from __future__ import annotations

from sqlalchemy import func, select

from connector.models import NcLink, ReconcileMark, ReconcileState
from connector.qualio.drift import Verdict
from tests.fake_jira import FakeJira
from tests.qualio.reconcile_support import (
    LONG_AGO,
    make_worker,
    qualio,  # noqa: F401  (fixture)
    reconcile,
    soon,
    sources,
    sync_all,
)
from tests.sync.helpers import deliver


def jira_writes(jira: FakeJira) -> list[tuple[str, str]]:
    return jira.writes()


def verdicts(report) -> dict[str, str]:
    return {d.summary.code: d.verdict.value for d in report.drift}


def test_every_case_and_its_jira_outcome(engine, db_url, qualio):  # noqa: F811
    state, jira = qualio.state, FakeJira()
    worker = make_worker(engine, db_url, jira, qualio.url)
    state.add_event("NCR", "open", "Old open NC", at=LONG_AGO)          # NCR-1: predates the install
    state.add_event("NCR", "closed", "Old closed NC", at=LONG_AGO)      # NCR-2: predates the install, closed
    state.add_event("CAPA", "open", "Not an NC", at=soon(0))            # CAPA-1: another template, never swept
    synced = state.add_event("NCR", "open", "Synced by webhook", at=soon(0))  # NCR-3
    deliver(engine, {"eventType": "nc.created", "ncId": "NCR-3", "timestamp": synced["modified_at"]})
    sync_all(worker)
    assert [key for method, key in jira_writes(jira) if method == "create_issue"] == ["[NCR-3] Synced by webhook"]
    jira.calls.clear()

    # First run: records the watermark; pre-install NCs are left alone, the synced one is unchanged.
    first = reconcile(engine, qualio.url)
    assert first.watermark_set and first.drift == []
    assert (first.figures.scanned, first.figures.unchanged, first.figures.pre_install) == (3, 1, 2)
    with engine.connect() as conn:
        assert conn.execute(select(ReconcileState.watermark)).scalar_one() is not None
    sync_all(worker)
    assert jira_writes(jira) == []

    # A missed change (NCR-3 retitled, its webhook lost) and a missed create (NCR-4, no webhook at all).
    changed = state.change("NCR-3", at=soon(2), title="Retitled in Qualio")
    state.add_event("NCR", "open", "Created while the webhook was down", at=soon(30))
    second = reconcile(engine, qualio.url)
    assert verdicts(second) == {"NCR-3": "changed", "NCR-4": "new"}
    assert (second.figures.changed, second.figures.new, second.figures.pre_install) == (1, 1, 2)
    assert sources(engine)[-2:] == [("NCR-3", "nc.updated", "reconcile"), ("NCR-4", "nc.created", "reconcile")]
    details_before = state.stats()["byKind"].get("detail", 0)
    sync_all(worker)
    writes = jira_writes(jira)
    assert ("create_issue", "[NCR-4] Created while the webhook was down") in writes
    assert [c for c in writes if c[0] == "update_issue"] == [("update_issue", _key(engine, "NCR-3"))]
    assert jira.issues[_key(engine, "NCR-3")].fields["summary"] == "[NCR-3] Retitled in Qualio"
    assert state.stats()["byKind"]["detail"] - details_before == 2  # one detail per changed NC, by the worker

    # Unchanged: a repeat run queues nothing, fetches no detail, and the worker writes nothing to Jira.
    jira.calls.clear()
    stats = state.stats()["byKind"]
    third = reconcile(engine, qualio.url)
    assert third.drift == [] and third.figures.unchanged == 2 and third.figures.pre_install == 2
    assert state.stats()["byKind"].get("detail", 0) == stats["detail"]
    assert len(sources(engine)) == 3
    sync_all(worker)
    assert jira_writes(jira) == []

    # The lost webhook arrives late, for the change reconcile already applied: no Jira write.
    deliver(engine, {"eventType": "nc.updated", "ncId": "NCR-3", "timestamp": changed["modified_at"],
                     "changedFields": ["title"]})
    sync_all(worker)
    assert jira_writes(jira) == []

    # Backfill (statuses: open by default): the old open NC is queued and created; the old closed one is not.
    backfill = reconcile(engine, qualio.url, backfill=frozenset({"open"}))
    assert verdicts(backfill) == {"NCR-1": "backfill"} and backfill.figures.pre_install == 1
    sync_all(worker)
    assert [c for c in jira_writes(jira) if c[0] == "create_issue"] == [("create_issue", "[NCR-1] Old open NC")]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(NcLink).where(NcLink.nc_id == "NCR-2")).scalar() == 0

    # --status closed backfills the closed one too.
    closed = reconcile(engine, qualio.url, backfill=frozenset({"closed"}))
    assert verdicts(closed) == {"NCR-2": "backfill"}
    sync_all(worker)
    assert ("create_issue", "[NCR-2] Old closed NC") in jira_writes(jira)
    assert {n for n, *_ in sources(engine)} == {"NCR-1", "NCR-2", "NCR-3", "NCR-4"}  # never CAPA-1


def test_a_dry_run_queues_nothing_and_records_no_watermark(engine, db_url, qualio):  # noqa: F811
    qualio.state.add_event("NCR", "open", "Old", at=LONG_AGO)
    qualio.state.add_event("NCR", "open", "New", at=soon(30))
    report = reconcile(engine, qualio.url, dry_run=True, backfill=frozenset({"open"}))
    assert report.dry_run and report.watermark_set
    assert verdicts(report) == {"NCR-1": Verdict.BACKFILL.value, "NCR-2": Verdict.NEW.value}
    assert sources(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(ReconcileState.watermark)).scalar_one() is None
        assert conn.execute(select(func.count()).select_from(ReconcileMark)).scalar() == 0


def _key(engine, nc_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(select(NcLink.jira_key).where(NcLink.nc_id == nc_id)).scalar_one()


def test_paging_429s_and_a_set_that_changes_during_the_sweep(engine, db_url, qualio):  # noqa: F811
    """Newest change first (a change moves a row to the top), pages of 3, a 429 on the way, and while the sweep
    runs: a row changes (every row shifts), one is closed (it leaves open for closed) and one is created. Each
    NC is queued once per state and ends up as exactly one Jira issue with its latest title."""
    state, jira = qualio.state, FakeJira()
    state.order = "modified"
    for n in range(10):
        state.add_event("NCR", ["open", "closed"][n % 2], f"NC {n + 1}", at=soon(30))
    moment = soon(40)

    def churn(st, lists: int) -> None:
        if lists == 2:
            st.change("NCR-9", at=moment, title="Changed mid-sweep")  # open, jumps to the top
            st.throttle_next = 1
        if lists == 4:
            st.change("NCR-3", at=moment, status="closed", title="Closed mid-sweep")
            st.add_event("NCR", "open", "Created mid-sweep", at=moment)

    state.on_list.append(churn)
    report = reconcile(engine, qualio.url)
    state.on_list.clear()
    assert report.figures.throttled == 1 and report.settled
    assert sum(s.passes for s in report.sweeps) > len(report.sweeps)  # some status was read again
    queued = [nc for nc, _, source in sources(engine) if source == "reconcile"]
    assert set(queued) == {f"NCR-{n}" for n in range(1, 12)}
    twice = {nc for nc in queued if queued.count(nc) > 1}
    assert twice <= {"NCR-3", "NCR-9"}  # read before and after their change: one delivery per state
    worker = make_worker(engine, db_url, jira, qualio.url)
    sync_all(worker)
    summaries = sorted(issue.fields["summary"] for issue in jira.issues.values())
    assert len(summaries) == 11 and "[NCR-9] Changed mid-sweep" in summaries
    assert "[NCR-3] Closed mid-sweep" in summaries and "[NCR-11] Created mid-sweep" in summaries
    again = reconcile(engine, qualio.url)
    assert again.drift == [] and again.figures.unchanged == 11
