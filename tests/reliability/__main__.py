"""python -m tests.reliability --report: run the reliability suite and print one line per scenario."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.reliability.figures import REPORT_ENV, SOAK_ENV, Figures


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability")
    parser.add_argument("--report", action="store_true", help="print one line of figures per scenario")
    parser.add_argument("--soak", action="store_true", help=f"the long soak mode ({SOAK_ENV}=1)")
    args, pytest_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        report_file = Path(tmp) / "figures.jsonl"
        env = {**os.environ, REPORT_ENV: str(report_file)}
        if args.soak:
            env[SOAK_ENV] = "1"
        here = Path(__file__).parent
        # One scenario at a time (-n 0): the figures are then not slowed by a neighbour's load.
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-n", "0", str(here), *pytest_args], env=env)
        if args.report and report_file.exists():
            print("\nreliability figures")
            for line in report_file.read_text(encoding="utf-8").splitlines():
                print(Figures(**json.loads(line)).line())
    return code


if __name__ == "__main__":
    sys.exit(main())
