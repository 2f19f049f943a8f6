"""Offset paging over a set that changes while it is read (pure: a list in memory stands for Qualio's)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from connector.qualio.sweep import Page, settle, sweep_status


class Listing:
    """Rows by status, newest first when ``newest_first`` (a change moves a row to the top: the worst case).
    ``before_read`` runs before each page is answered, with the read count (the set changes mid-sweep)."""

    def __init__(self, rows: dict[str, list[str]], newest_first: bool = False) -> None:
        self.rows = {status: list(codes) for status, codes in rows.items()}
        self.newest_first = newest_first
        self.reads: list[tuple[str, int, int]] = []
        self.before_read: Callable[[int], None] = lambda n: None
        self.version = dict.fromkeys((c for codes in rows.values() for c in codes), 0)

    def read(self, status: str, offset: int, limit: int) -> Page:
        self.before_read(len(self.reads))
        self.reads.append((status, offset, limit))
        rows = self.rows.setdefault(status, [])
        return Page([{"code": c, "v": self.version[c]} for c in rows[offset:offset + limit]], len(rows))

    def touch(self, code: str, to: str | None = None) -> None:
        """A change to ``code`` (moving it to status ``to``): it goes to the top of its (new) status."""
        status = next(s for s, codes in self.rows.items() if code in codes)
        self.rows[status].remove(code)
        target = self.rows.setdefault(to or status, [])
        target.insert(0, code) if self.newest_first else target.append(code)
        self.version[code] += 1

    def add(self, code: str, status: str) -> None:
        self.version[code] = 0
        self.rows.setdefault(status, []).insert(0, code)


def collect() -> tuple[set[str], Callable[[str, list[object]], None]]:
    seen: set[str] = set()

    def handle(status: str, rows: list[object]) -> None:
        seen.update(row["code"] for row in rows)  # type: ignore[index]

    return seen, handle


def codes(n: int, prefix: str = "NCR") -> list[str]:
    return [f"{prefix}-{i}" for i in range(1, n + 1)]


def test_a_still_list_is_read_once_with_overlapping_pages() -> None:
    listing = Listing({"open": codes(7)})
    seen, handle = collect()
    sweep = sweep_status(listing.read, "open", 3, handle)
    assert listing.reads == [("open", 0, 3), ("open", 2, 3), ("open", 4, 3)]
    assert seen == set(codes(7)) and sweep.settled and sweep.passes == 1 and sweep.read == 7


def test_an_exact_multiple_ends_on_the_total_not_on_an_empty_page() -> None:
    listing = Listing({"open": codes(5)})
    sweep_status(listing.read, "open", 3, collect()[1])
    assert listing.reads == [("open", 0, 3), ("open", 2, 3)]


def test_a_row_moving_up_mid_sweep_is_caught_and_the_pass_read_again() -> None:
    # Newest first: NCR-9 changes while page 1 is being read, so it jumps to the top and every row shifts by
    # one; without the overlap check, NCR-9 (read on no page) would be missed and the total never moved.
    listing = Listing({"open": codes(9)}, newest_first=True)
    listing.before_read = lambda n: listing.touch("NCR-9") if n == 1 else None
    seen, handle = collect()
    sweep = sweep_status(listing.read, "open", 3, handle)
    assert sweep.passes == 2 and sweep.settled and sweep.reasons == ["rows shifted at offset 2"]
    assert seen == set(codes(9))


def test_a_row_leaving_mid_sweep_moves_the_total_and_is_read_where_it_went() -> None:
    listing = Listing({"open": codes(6), "closed": []})
    listing.before_read = lambda n: listing.touch("NCR-1", to="closed") if n == 1 else None
    seen, handle = collect()
    sweeps = [sweep_status(listing.read, s, 2, handle) for s in ("open", "closed")]
    assert sweeps[0].passes == 2 and sweeps[0].reasons == ["total moved from 6 to 5 during the pass"]
    assert seen == set(codes(6))


def test_a_row_moving_into_a_status_already_read_is_found_by_settle() -> None:
    listing = Listing({"open": codes(3), "closed": ["NCR-9"]})
    # NCR-9 is reopened after "open" was read and before "closed" is: neither sweep sees it...
    listing.before_read = lambda n: listing.touch("NCR-9", to="open") if n == 2 else None
    seen, handle = collect()
    sweeps = [sweep_status(listing.read, s, 2, handle) for s in ("open", "closed")]
    assert "NCR-9" not in seen
    settle(listing.read, sweeps, 2, handle)  # ...but open's total moved: it is read again
    assert "NCR-9" in seen and sweeps[0].passes == 2


def test_a_status_that_never_settles_is_reported_after_the_last_pass() -> None:
    listing = Listing({"open": codes(6)})
    listing.before_read = lambda n: listing.add(f"NEW-{n}", "open")
    sweep = sweep_status(listing.read, "open", 2, collect()[1], max_passes=3)
    assert not sweep.settled and sweep.passes == 3 and len(sweep.reasons) == 3


def test_pages_of_one_row_cannot_overlap() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        sweep_status(Listing({}).read, "open", 1, collect()[1])


@pytest.mark.parametrize("seed", range(40))
def test_random_churn_never_loses_a_row_that_stayed_put(seed: int) -> None:
    """Rows are changed, moved and added at random while the sweep runs; every row untouched for the whole run
    is read whenever the run settled (and a run that did not settle says so)."""
    rng = random.Random(seed)
    statuses = ("open", "closed", "cancelled")
    listing = Listing({s: codes(rng.randrange(0, 12), s[:2].upper()) for s in statuses}, newest_first=rng.random() < .5)
    touched: set[str] = set()

    def churn(n: int) -> None:
        if rng.random() < 0.25:
            every = [c for cs in listing.rows.values() for c in cs]
            if every and rng.random() < 0.7:
                code = rng.choice(every)
                touched.add(code)
                listing.touch(code, to=rng.choice(statuses))
            else:
                listing.add(f"NEW-{n}", rng.choice(statuses))
                touched.add(f"NEW-{n}")

    listing.before_read = churn
    seen, handle = collect()
    sweeps = [sweep_status(listing.read, s, rng.randrange(2, 5), handle, max_passes=6) for s in statuses]
    settle(listing.read, sweeps, 3, handle, max_passes=6)
    still = {c for cs in listing.rows.values() for c in cs} - touched
    if all(s.settled for s in sweeps):
        assert still <= seen


@pytest.mark.parametrize("newest_first", [True, False])
def test_one_leaving_as_another_arrives_after_the_sweep_is_found_by_settle(newest_first: bool) -> None:
    # open's total stays 3 (NCR-2 closes, NEW-1 is created) after open was read: the first row (newest first)
    # or the last row (creation order) tells.
    listing = Listing({"open": codes(3), "closed": ["CL-1"]}, newest_first=newest_first)

    def churn(n: int) -> None:
        if n == 2:
            listing.touch("NCR-2", to="closed")
            listing.add("NEW-1", "open")
            if not newest_first:  # creation order: the new row is the last one
                listing.rows["open"].remove("NEW-1")
                listing.rows["open"].append("NEW-1")

    listing.before_read = churn
    seen, handle = collect()
    sweeps = [sweep_status(listing.read, s, 2, handle) for s in ("open", "closed")]
    assert "NEW-1" not in seen and sweeps[0].total == 3
    settle(listing.read, sweeps, 2, handle)
    assert "NEW-1" in seen
    assert sweeps[0].reasons == [f"the {'first' if newest_first else 'last'} row changed after the sweep"]


def test_a_server_that_caps_the_page_size_is_still_read_to_the_total() -> None:
    """Qualio documents no maximum `limit`: pages shorter than asked for are not the last while the total is
    not reached (a short page used to end the pass after the first one)."""
    listing = Listing({"open": codes(9)})
    capped = lambda status, offset, limit: listing.read(status, offset, min(limit, 4))  # noqa: E731
    seen, handle = collect()
    sweep = sweep_status(capped, "open", 100, handle)
    assert seen == set(codes(9)) and sweep.settled and sweep.read == 9
    assert [offset for _, offset, _ in listing.reads] == [0, 3, 6]
