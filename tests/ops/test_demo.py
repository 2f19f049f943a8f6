"""`nc-connector demo` runs the whole story and its printed counts add up."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def count(output: str, label: str) -> int:
    match = re.search(rf"^{re.escape(label)}\s+(\d+)$", output, re.MULTILINE)
    assert match, f"no line {label!r} in:\n{output}"
    return int(match.group(1))


def test_demo_tells_the_story_and_leaves_nothing_running():
    proc = subprocess.run([sys.executable, "-m", "connector", "demo"], capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    # 4 NCs sent 3+2+3+2 times, a same-second pair (one copy repeated), a comment 3 times, the outage batch 2+3
    assert count(out, "deliveries received") == 21
    assert count(out, "  accepted (202)") == 9
    assert count(out, "  duplicates dropped (200)") == 12
    assert count(out, "Jira issues created") == 4
    assert count(out, "Jira comments") == 1
    assert count(out, "Jira 503s during outage") >= 1
    assert count(out, "dead letters") == 0
    rows = re.findall(r"^(QA-\d+)\s+(To Do|In Progress|Done)\s+(\d+)\s+\[(\S+)\]", out, re.MULTILINE)
    assert sorted(r[3] for r in rows) == ["NC-2025-001", "NC-2025-002", "NC-2025-003", "NCR-12"]
    assert {r[3]: r[1] for r in rows} == {"NC-2025-001": "In Progress", "NC-2025-002": "To Do",
                                          "NC-2025-003": "In Progress", "NCR-12": "Done"}
    # the lost webhook: NCR-12 retitled in Qualio, found by reconcile, the Jira issue updated
    assert count(out, "lost webhooks reconciled") == 1
    assert re.search(r"^\[5/5\] NCR-12 retitled in Qualio, its webhook lost: reconcile scanned 1, changed 1", out,
                     re.MULTILINE)
    assert re.search(r"^QA-\d+\s+Done\s+0\s+\[NCR-12\] Cleaning log not signed off \(night shift\)$", out,
                     re.MULTILINE)
    assert "one Jira issue per NC, nothing lost" in out
