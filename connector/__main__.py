"""python -m connector: the same as the nc-connector command."""

from connector.cli import main

main()
