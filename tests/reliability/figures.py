"""One line of figures per scenario, printed and (for `python -m tests.reliability --report`) collected."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

REPORT_ENV = "NC_RELIABILITY_REPORT"  # a file to append each scenario's figures to (JSON lines)
SOAK_ENV = "NC_CONNECTOR_SOAK"  # "1": the long soak mode; counts scaled up by soak_factor()


def soak_factor() -> int:
    """1 in the normal test run; larger in soak mode (NC_CONNECTOR_SOAK=1, or a number)."""
    raw = os.environ.get(SOAK_ENV, "")
    if not raw or raw == "0":
        return 1
    return 10 if raw == "1" else max(1, int(raw))


@dataclass
class Figures:
    scenario: str
    sent: int = 0
    acknowledged: int = 0
    duplicates: int = 0
    jira_issues: int = 0
    jira_writes: int = 0
    crashes: int = 0
    faults: int = 0
    lost: int = 0
    doubled: int = 0
    seconds: float = 0.0
    note: str = ""

    def line(self) -> str:
        return (f"{self.scenario:<28} sent {self.sent:>5}  acked {self.acknowledged:>5}  dup {self.duplicates:>5}  "
                f"issues {self.jira_issues:>4}  writes {self.jira_writes:>5}  crashes {self.crashes:>3}  "
                f"faults {self.faults:>4}  lost {self.lost}  doubled {self.doubled}  {self.seconds:6.1f}s"
                + (f"  ({self.note})" if self.note else ""))


def report(figures: Figures) -> None:
    """Print the scenario's line (visible with -s) and append it to the report file when collecting."""
    print("\n" + figures.line())
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(figures)) + "\n")
