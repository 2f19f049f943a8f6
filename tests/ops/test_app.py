"""The app factory: a web process's connection pool is as large as its request threads need."""

from __future__ import annotations

import threading

from sqlalchemy import event

from connector.ops.app import BACKGROUND_CONNECTIONS, create_app
from connector.ops.serving import THREADS
from tests.conftest import make_settings, truncate
from tests.helpers import post


def test_the_pool_holds_a_connection_per_request_thread(db_url):
    app = create_app(make_settings(db_url), threads=12)
    try:
        assert app.config["NC_ENGINE"].pool.size() == 12 + BACKGROUND_CONNECTIONS
    finally:
        app.config["NC_ENGINE"].dispose()
    app = create_app(make_settings(db_url))  # what plain gunicorn gets
    try:
        assert app.config["NC_ENGINE"].pool.size() == THREADS + BACKGROUND_CONNECTIONS
    finally:
        app.config["NC_ENGINE"].dispose()


def test_busy_request_threads_reuse_their_connections(db_url):
    """Past pool_size, SQLAlchemy closes a returned connection: a pool smaller than the threads would open one
    per request. Here every thread is busy at once, over and over, and no more than the pool is ever opened."""
    threads, rounds = 10, 15
    app = create_app(make_settings(db_url), threads=threads)
    engine = app.config["NC_ENGINE"]
    opened: list[object] = []
    event.listen(engine, "connect", lambda conn, record: opened.append(conn))
    client = app.test_client()
    barrier = threading.Barrier(threads)
    answers: list[int] = []

    def send(thread: int) -> None:
        for i in range(rounds):
            barrier.wait(10)  # all threads in a request at once
            payload = {"eventType": "nc.updated", "ncId": f"NC-{thread}-{i}", "timestamp": "2025-01-05T10:15:32Z"}
            answers.append(post(client, payload).status_code)

    workers = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert answers.count(202) == threads * rounds
        assert len(opened) <= threads + BACKGROUND_CONNECTIONS
    finally:
        truncate(engine)
        engine.dispose()
