"""`python -m connector.sandbox --host 127.0.0.1 --port 2990`: serve the Jira sandbox (threaded werkzeug)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from connector.sandbox import add_arguments, options_from_args, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connector.sandbox",
                                     description="In-memory Jira REST API v2 sandbox with switchable faults.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    run(args.host, args.port, **options_from_args(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
