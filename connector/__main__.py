"""python -m connector: the same as the nc-connector command."""

from connector.ops.cli import main

main()
