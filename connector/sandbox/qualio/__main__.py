"""python -m connector.sandbox.qualio: serve the Qualio stand-in."""

from connector.sandbox.qualio.server import main

main()
