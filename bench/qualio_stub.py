"""A tiny stand-in for Qualio's API: GET /v1/events/events/{code} -> an `eventDetailed` record.

    python -m bench.qualio_stub --port 8099 --records records.json

records.json maps event code -> record (see bench.payloads.qualio_record, shaped like the
`eventDetailed` example of Qualio's OpenAPI description). Requests need an X-Api-Key header
(else 403, as Qualio). Unknown codes answer 404. The stub counts every request:

    GET /_stub/stats   {"requests": n, "byCode": {code: n}, "times": [epoch seconds, ...]}
    GET /_stub/health  {"status": "ok"}
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

PREFIX = "/v1/events/events/"


class StubState:
    def __init__(self, records: dict[str, Any]) -> None:
        self.records = records
        self.lock = threading.Lock()
        self.by_code: dict[str, int] = {}
        self.times: list[float] = []

    def count(self, code: str) -> None:
        with self.lock:
            self.by_code[code] = self.by_code.get(code, 0) + 1
            self.times.append(time.time())

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": len(self.times), "byCode": dict(self.by_code), "times": list(self.times)}


def make_handler(state: StubState) -> type[BaseHTTPRequestHandler]:
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
            path = self.path.split("?", 1)[0]
            if path == "/_stub/health":
                return self._send(200, {"status": "ok"})
            if path == "/_stub/stats":
                return self._send(200, state.stats())
            if not path.startswith(PREFIX):
                return self._send(404, {"message": "Not Found"})
            code = unquote(path[len(PREFIX):])
            state.count(code)
            if not self.headers.get("X-Api-Key"):
                return self._send(403, {"message": "Forbidden"})
            record = state.records.get(code)
            if record is None:
                return self._send(404, {"message": f"Event {code} not found"})
            return self._send(200, record)

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.qualio_stub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--records", required=True, help="JSON file: event code -> eventDetailed record")
    args = parser.parse_args(argv)
    with open(args.records, encoding="utf-8") as handle:
        records = json.load(handle)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(StubState(records)))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
