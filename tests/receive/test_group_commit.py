"""Group commit: concurrent callers share a batch, each gets its own result or the batch's error."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from connector.receive.group_commit import GroupCommit


def run_threads(count: int, target) -> list[object]:
    results: list[object] = [None] * count
    start = threading.Barrier(count)

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # kept to be asserted on
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_each_caller_gets_its_own_result_and_concurrent_calls_share_batches():
    batches: list[list[int]] = []

    def write(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        time.sleep(0.02)  # a commit: long enough for the other threads to queue up behind it
        return [item * 10 for item in items]

    group = GroupCommit(write)
    assert run_threads(16, group.submit) == [i * 10 for i in range(16)]
    assert sorted(i for batch in batches for i in batch) == list(range(16))  # each item written once
    assert len(batches) < 16  # some were written together


def test_a_failed_batch_fails_every_caller_in_it_and_the_next_batch_works():
    calls = 0

    def write(items: Sequence[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            time.sleep(0.05)
            raise OSError("disk I/O error")
        return [item.upper() for item in items]

    group = GroupCommit(write)
    results = run_threads(8, lambda i: group.submit(f"d{i}"))
    failed = [r for r in results if isinstance(r, OSError)]
    assert failed and all(str(r) == "disk I/O error" for r in failed)
    assert all(r == f"D{i}" for i, r in enumerate(results) if not isinstance(r, OSError))
    assert group.submit("again") == "AGAIN"


def test_a_result_count_mismatch_is_an_error_not_a_wrong_answer():
    group: GroupCommit[int, int] = GroupCommit(lambda items: [])
    with pytest.raises(ValueError):
        group.submit(1)
