"""Run the app under several web processes: granian (its RSGI or WSGI interface) or gunicorn.

Each forks its workers from this process, and each worker builds its own app (engines and pools must
be created after fork). What holds under every server, and is checked by tests/ops/test_serving.py:
chunked bodies and the body limit, SIGTERM lets requests in flight finish (10 s at most), a worker that
dies is replaced, and the counters of every process add up in /metrics.

The default (`auto`, resolve()) is the fastest measured for the database (README, Performance): on
PostgreSQL granian's RSGI interface, the webhook answered on an event loop (ops/rsgi.py); on SQLite its
WSGI interface, whose HTTP layer is Rust and only the WSGI call holds the GIL. gunicorn stays available
(`serve --server gunicorn`), and the plain `gunicorn ... 'connector.ops.app:create_app()'` of the README
still works.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from connector.metrics import MULTIPROC_ENV

if TYPE_CHECKING:
    from flask import Flask

SERVERS = ("auto", "granian", "granian-rsgi", "gunicorn")
DEFAULT_SERVER = "auto"  # by the database: see resolve()
# The threaded shape: 2 web processes x 8 request threads. A sender's keep-alive connections stay with the
# process that accepted them, unevenly (16 connections to 4 processes: 6/5/4/1), and a process queues what its
# threads cannot take at once: 2 x 4 answered 0.5x the requests of 2 x 8 on PostgreSQL. Fewer processes also
# cost less CPU per request on a small machine (2 cores beside PostgreSQL: 2 x 8 about 20% less than 4 x 4);
# bench/README.md has the runs. Each web process holds a database connection per thread (ops/app.py).
WORKERS = 2  # web processes
THREADS = 8  # request threads per web process, under either server
# The event-loop shape on PostgreSQL: one process whose loop awaits 16 connections. Two processes on two cores
# beside PostgreSQL's backends answered fewer requests with a longer tail (README, Performance).
LOOP_WORKERS = 1
LOOP_CONNECTIONS = 16
GRACEFUL_SECONDS = 10  # how long SIGTERM waits for requests in flight before the workers are killed


def resolve(server: str, workers: int | None, threads: int | None, database_url: str) -> tuple[str, int, int]:
    """The server and shape `serve` runs: what was asked, the rest the measured best for the database.

    "auto" is granian's RSGI interface on PostgreSQL (the webhook awaits its one statement on an event loop) and
    its WSGI interface on SQLite (whose driver has no asyncio interface: the event loop only handed each
    delivery to a thread, and answered 0.45-0.97x of the threaded server's requests)."""
    on_postgresql = make_url(database_url).get_backend_name() == "postgresql"
    if server == "auto":
        server = "granian-rsgi" if on_postgresql else "granian"
    one_loop = server == "granian-rsgi" and on_postgresql
    return (server, workers or (LOOP_WORKERS if one_loop else WORKERS),
            threads or (LOOP_CONNECTIONS if one_loop else THREADS))


def serve(app_factory: Callable[[], Flask], host: str, port: int, workers: int, threads: int = THREADS,
          server: str = "granian") -> None:
    """Serve app_factory() on host:port in `workers` processes until SIGTERM/SIGINT."""
    _count_across_processes()
    if server in ("granian", "granian-rsgi"):
        _serve_granian(app_factory, host, port, workers, threads, rsgi=server == "granian-rsgi")
    elif server == "gunicorn":
        _serve_gunicorn(app_factory, host, port, workers, threads)
    else:
        raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")


def _serve_granian(app_factory: Callable[[], Flask], host: str, port: int, workers: int, threads: int,
                   rsgi: bool = False) -> None:
    """granian's WSGI interface, or with `rsgi` its RSGI one: the webhook on each process's event loop
    (ops/rsgi.py; measured in the README's Performance section, not the default yet)."""
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    # granian starts workers with multiprocessing's start method: under fork they inherit app_factory (a
    # closure over the validated settings); under spawn it would have to be pickled, and is not.
    if multiprocessing.get_start_method(allow_none=False) != "fork":
        raise RuntimeError("granian workers need the 'fork' start method (Linux's default before Python 3.14)")
    from connector.ops.rsgi import RsgiApp

    loader: Callable[[], Any] = app_factory
    if rsgi:
        loader = functools.partial(RsgiApp, app_factory, threads)  # `threads` sizes RsgiApp's connections
    server = Server(
        "connector.ops.rsgi" if rsgi else "connector.ops.app:create_app",  # only the process title
        address=host, port=port, interface=Interfaces.RSGI if rsgi else Interfaces.WSGI, workers=workers,
        # WSGI calls at once per worker, like gunicorn's gthread threads; RSGI's event loop takes them all.
        blocking_threads=None if rsgi else threads,
        http=HTTPModes.http1,  # what Qualio and proxies send; HTTP/2 was not measured
        # asyncio's own loop, even where uvloop is installed (granian's "auto" takes it): under uvloop new
        # deliveries ran at 0.64x and with twice the p99, and its rounds were bimodal (README, Performance).
        loop=Loops.asyncio,
        respawn_failed_workers=True,  # as gunicorn's arbiter does
        workers_kill_timeout=GRACEFUL_SECONDS,
        log_access=False,
        log_level=LogLevels.warning,
        # granian's own lines go through the root logger: JSON on stderr like every other line.
        log_dictconfig={"loggers": {"_granian": {"handlers": [], "propagate": True}}},
    )
    server.serve(target_loader=loader, wrap_loader=False)


def _serve_gunicorn(app_factory: Callable[[], Flask], host: str, port: int, workers: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    class GunicornServer(BaseApplication):  # type: ignore[misc]
        """gunicorn with its options given in code; each worker process builds its own app."""

        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return app_factory()

    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": None,
        "timeout": 30,
        "graceful_timeout": GRACEFUL_SECONDS,
        "preload_app": False,  # engines and pools must be created after fork
    }
    GunicornServer().run()


def _count_across_processes() -> None:
    """Make this process's metrics (and so its forked workers') count into the multiprocess directory.

    prometheus_client picks its value class once, when it is first imported: `nc-connector` imports it
    before `serve` sets PROMETHEUS_MULTIPROC_DIR, so the web workers counted in memory of their own and
    /metrics (which reads the directory) never showed their deliveries. Nothing has been counted in this
    process yet, so re-creating every metric's values with the multiprocess class loses nothing.
    """
    from prometheus_client import REGISTRY, values
    from prometheus_client.metrics import MetricWrapperBase

    if not os.environ.get(MULTIPROC_ENV) or getattr(values.ValueClass, "_multiprocess", False):
        return
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            children = list(collector._metrics.values()) if collector._is_parent() else [collector]  # type: ignore[no-untyped-call]
            for metric in children:
                metric._metric_init()  # type: ignore[no-untyped-call]
