"""What operators run and read: the `nc-connector` command, the web app's factory with health, readiness and
`/metrics`, operator views, the demo, the manifest check, the server, `serve`'s supervision
of its worker child (`supervise`) and the assembly of a worker from settings.

The composition root: may import every stage. Nothing in the package imports `ops`.
"""
