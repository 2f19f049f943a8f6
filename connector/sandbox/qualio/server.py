"""The Qualio stand-in's HTTP layer (http.server: no framework, so thousands of requests stay cheap)."""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from connector.sandbox.qualio.state import STATUSES, QualioState

EVENTS = "/v1/events/events"
TEMPLATES = "/v1/events/templates"
THROTTLED = {"message": "You have exceeded what is allowed in the fair use policy for this API"}
FORBIDDEN = {"message": "User is not authorized to access this resource with an explicit deny"}


def make_handler(state: QualioState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path == "/_qualio/health":
                return self._send(200, {"status": "ok"})
            if url.path == "/_qualio/stats":
                return self._send(200, state.stats())
            if url.path == "/_qualio/events":
                with state.lock:
                    return self._send(200, {"events": [{k: e[k] for k in ("code", "status", "modified_at")}
                                                       for e in state.events.values()]})
            kind = ("templates" if url.path == TEMPLATES else "list" if url.path == EVENTS
                    else "detail" if url.path.startswith(EVENTS + "/") else "other")
            refused = state.admit(kind, self.headers.get("X-Api-Key"), query)
            if refused is not None:
                return self._send(refused, FORBIDDEN if refused == 403 else THROTTLED)
            if kind == "templates":
                return self._send(200, state.template_list())
            if kind == "list":
                return self._list(query)
            if kind == "detail":
                event = state.detail(unquote(url.path[len(EVENTS) + 1:]))
                return self._send(200, event) if event else self._send(404, {"message": "Event not found"})
            return self._send(404, {"message": "Not Found"})

        def _list(self, query: dict[str, str]) -> None:
            errors = []
            status = query.get("status")
            if status not in STATUSES:
                errors.append({"location": "query", "name": "status",
                               "description": f"status must be one of {', '.join(STATUSES)}"})
            numbers = {}
            for name, default in (("offset", 0), ("limit", 30)):
                try:
                    numbers[name] = int(query.get(name, default))
                    if numbers[name] < 0:
                        raise ValueError
                except ValueError:
                    errors.append({"location": "query", "name": name, "description": f"{name} is not a number"})
            if errors:
                return self._send(400, {"status": "error", "errors": errors})
            assert status is not None
            self._send(200, state.query(status, numbers["offset"], numbers["limit"],
                                        query.get("event_template_matrix_id")))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            data = json.loads(self.rfile.read(length) or b"{}") if length else {}
            if url.path == "/_qualio/events":
                return self._send(201, state.add_event(**data))
            if url.path.startswith("/_qualio/events/"):
                code = unquote(url.path[len("/_qualio/events/"):])
                if code not in state.events:
                    return self._send(404, {"message": "Event not found"})
                return self._send(200, state.change(code, **data))
            if url.path == "/_qualio/throttle":
                with state.lock:
                    state.throttle_next = int(data.get("count", 1))
                return self._send(200, {"throttleNext": state.throttle_next})
            return self._send(404, {"message": "Not Found"})

    return Handler


def make_server(state: QualioState, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(state))
    server.daemon_threads = True
    return server


class RunningQualio:
    """The stand-in served from a daemon thread; a context manager."""

    def __init__(self, state: QualioState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self.server = make_server(state, host, port)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="qualio-sandbox", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningQualio:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def start_in_thread(state: QualioState | None = None, host: str = "127.0.0.1", port: int = 0) -> RunningQualio:
    return RunningQualio(state or QualioState(), host, port)


def seed(state: QualioState, count: int, days: float = 365.0, rng: random.Random | None = None) -> None:
    """``count`` NCR events spread over the five statuses, created and modified in the last ``days``."""
    rng = rng or random.Random(14)
    now = state.now()
    for n in range(count):
        at = now - timedelta(days=days * (count - n) / max(count, 1))
        state.add_event("NCR", STATUSES[rng.randrange(len(STATUSES))], at=at)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m connector.sandbox.qualio", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--api-key", default="qualio-sandbox-key")
    parser.add_argument("--events", type=int, default=0, help="NCR events to start with, over the five statuses")
    parser.add_argument("--limit-per-minute", type=int, default=200, help="0: no limit")
    parser.add_argument("--order", choices=("created", "modified"), default="created")
    args = parser.parse_args(argv)
    state = QualioState(args.api_key, args.limit_per_minute or None, args.order)
    seed(state, args.events)
    server = make_server(state, args.host, args.port)
    print(f"Qualio stand-in on http://{args.host}:{server.server_address[1]} (X-Api-Key {args.api_key}, "
          f"{len(state.events)} events)", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
