"""`serve`'s app under granian's RSGI interface: the webhook answered on the process's event loop
(receive/webhook_async.py), every other path by the Flask app in a thread (ops/wsgi_bridge.py).

Why not the WSGI interface: there, every request held one of the process's threads while it waited for the
database, and each had to be woken when its answer came back. With 16 threads and the database's backends on
two cores, those wake-ups made the p99 twice the baseline's at a median half its; one event loop per process
with a connection per sender gave both a shorter median and a shorter tail (bench/README.md, "The p99 tail").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from connector.ops import wsgi_bridge
from connector.receive import sightings
from connector.receive.problems import problem
from connector.receive.store_async import AsyncStore
from connector.receive.webhook import WEBHOOK_PATH, Answer, unexpected
from connector.receive.webhook_async import AsyncWebhook, read_body

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


class RsgiApp:
    """The RSGI application of one web process. `threads`: the requests that may wait for the database at
    once (PostgreSQL connections; SQLite's and the Flask app's threads)."""

    def __init__(self, app_factory: Callable[[], Flask], threads: int) -> None:
        self._app_factory = app_factory
        self._threads = threads

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Called in the worker process, after the fork: engines and pools are made here, not in serve.
        self.flask = self._app_factory()
        config = self.flask.config
        self.executor = ThreadPoolExecutor(self._threads, thread_name_prefix="nc-web")
        self.store = AsyncStore(config["NC_ENGINE"], self.executor, self._threads)
        self.webhook = AsyncWebhook(config["NC_SETTINGS"], config["NC_VERIFIER"], self.store)
        self.limit: int = config["NC_SETTINGS"].max_body_bytes

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.store.close())
        self.executor.shutdown(wait=True)
        sightings.flush_all()  # also done at exit; here while the loop's process is surely still whole

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.path == WEBHOOK_PATH:
            answer = await self.webhook.answer(scope.method, scope.headers, protocol)
        else:
            answer = await self._flask(scope, protocol)
        protocol.response_bytes(answer.status, answer.headers, answer.body)

    async def _flask(self, scope: Any, protocol: Any) -> Answer:
        body = await read_body(protocol, self.limit)
        if body is None:
            response = problem(413, "Payload Too Large", "body is larger than the configured limit "
                               "(NC_CONNECTOR_MAX_BODY_BYTES)")
            return Answer(413, list(response.headers.items()), response.get_data())
        environ = wsgi_bridge.environ_of(scope, body)
        try:
            status, headers, data = await asyncio.get_running_loop().run_in_executor(
                self.executor, wsgi_bridge.call, self.flask, environ)
        except Exception as exc:  # Flask answers its own errors; this is the bridge failing
            return unexpected(exc)
        return Answer(status, headers, data)
