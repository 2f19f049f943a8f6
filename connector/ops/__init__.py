"""What operators run and read: the `nc-connector` command, the web app's factory with health, readiness and
`/metrics`, operator views, the demo, the manifest check, the server and the assembly of a worker from settings.

The composition root: may import every stage. Nothing in the package imports `ops`.
"""
