"""What `serve` guarantees whichever server runs it (granian's RSGI or WSGI interface, or gunicorn): which one it
picks by the database, chunked bodies and the body limit, a request in flight finishing after SIGTERM, the
sightings a web process holds written when it stops, and the counters of every web process in /metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from connector.ops.serving import SERVERS
from tests.processes import free_port, start, stop, wait_ready

pytestmark = pytest.mark.slow
LIMIT = 2048


@pytest.fixture(params=[server for server in SERVERS if server != "auto"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {"NC_CONNECTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "NC_CONNECTOR_ALLOW_UNSIGNED": "true",
           "NC_CONNECTOR_MAX_BODY_BYTES": str(LIMIT), "NC_CONNECTOR_LOG_LEVEL": "WARNING"}
    proc = start(["serve", "--no-worker", "--workers", "2", "--threads", "2", "--port", str(port),
                  "--server", request.param], env, tmp_path / "serve.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
        yield port, proc
    finally:
        stop(proc)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_auto_serves_the_measured_best_of_the_database(database, request, tmp_path):
    url = f"sqlite:///{tmp_path / 'auto.db'}" if database == "sqlite" else request.getfixturevalue("pg_url")
    expected = {"sqlite": ("granian", 2, 8), "postgresql": ("granian-rsgi", 1, 16)}[database]
    port = free_port()
    env = {"NC_CONNECTOR_DATABASE_URL": url, "NC_CONNECTOR_ALLOW_UNSIGNED": "true"}
    proc = start(["serve", "--no-worker", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
        (serving,) = [line for line in lines if line["message"] == "serving"]
        assert (serving["server"], serving["workers"], serving["threads"]) == expected
        deadline = time.monotonic() + 10
        while len(web := children(proc.pid)) < expected[1] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(web) == expected[1]
        answer = requests.post(f"http://127.0.0.1:{port}/webhooks/qualio", data=body(90, padding=10),
                               headers={"Content-Type": "application/json"}, timeout=10)
        assert answer.status_code == 202 and answer.json()["status"] == "accepted"
    finally:
        stop(proc)


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def body(i: int, padding: int = 0) -> bytes:
    return json.dumps({"eventType": "nc.updated", "ncId": f"NC-5-{i}", "timestamp": "2025-01-05T10:15:32Z",
                       "description": "x" * padding}).encode()


def chunked_head(port: int) -> bytes:
    return (f"POST /webhooks/qualio HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def answer(sock: socket.socket) -> int:
    received = b""
    while b"\r\n\r\n" not in received:
        part = sock.recv(65536)
        if not part:
            break
        received += part
    return int(received[9:12]) if received.startswith(b"HTTP/1.1 ") else 0


def send_chunked(port: int, data: bytes, pieces: int = 3) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        step = len(data) // pieces + 1
        sock.sendall(chunked_head(port) + b"".join(chunk(data[i:i + step]) for i in range(0, len(data), step))
                     + b"0\r\n\r\n")
        return answer(sock)


def test_chunked_bodies_are_read_whole_and_the_limit_holds(served):
    port, _ = served
    assert send_chunked(port, body(1)) == 202
    assert send_chunked(port, body(2, padding=LIMIT - 200)) == 202  # just under the limit, in pieces
    assert send_chunked(port, body(3, padding=LIMIT + 10)) == 413
    assert send_chunked(port, body(1)) == 200  # the first one was stored whole: this is its duplicate


def test_metrics_add_up_every_web_process(served):
    port, _ = served
    for i in range(30):
        response = requests.post(f"http://127.0.0.1:{port}/webhooks/qualio", data=body(100 + i),
                                 headers={"Content-Type": "application/json", "Connection": "close"}, timeout=10)
        assert response.status_code == 202
    for _ in range(6):  # each scrape may land on either process: every one must show all 30
        text = requests.get(f"http://127.0.0.1:{port}/metrics", headers={"Connection": "close"}, timeout=10).text
        assert 'nc_connector_deliveries_total{outcome="accepted"} 30.0' in text


@pytest.mark.parametrize("group", [False, True], ids=["serve-alone", "process-group"])
def test_sigterm_lets_the_request_in_flight_finish(served, group):
    # The unit's KillMode=mixed sends SIGTERM to serve alone; KillMode=control-group to every process.
    port, proc = served
    data = body(7)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(chunked_head(port) + chunk(data[:20]))
        time.sleep(0.5)  # the request is in a web process now, reading its body
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(chunk(data[20:]) + b"0\r\n\r\n")
        assert answer(sock) == 202
    assert proc.wait(15) == 0


def test_a_graceful_stop_writes_the_sightings_each_web_process_holds(served, tmp_path):
    port, proc = served
    url = f"http://127.0.0.1:{port}/webhooks/qualio"
    headers = {"Content-Type": "application/json", "Connection": "close"}  # a connection each: both processes
    assert requests.post(url, data=body(300), headers=headers, timeout=10).status_code == 202
    answers = [requests.post(url, data=body(300), headers=headers, timeout=10).status_code for _ in range(20)]
    assert answers == [200] * 20
    os.kill(proc.pid, signal.SIGTERM)  # at once: within the second a web process holds its sightings
    assert proc.wait(15) == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "serve.db") as conn:
        assert conn.execute("SELECT times_seen FROM fingerprints").fetchall() == [(21,)]
