"""A probe, not the product: the webhook's PostgreSQL path as an RSGI (asyncio) app, to measure what an
asyncio ingest path would give (bench/README.md, "The p99 tail", the asyncio probe). It verifies, parses and
fingerprints like connector/receive/webhook.py and runs store.py's one statement on a queue of RSGI_CONNS
autocommit connections per process, and nothing else: no error answers, no body limit, no sightings, no wake-up,
no metrics, no thin-event re-queue. Run it as the A/B of 2026-12-02 did, with the environment of `serve`:

    PYTHONPATH=.:bench RSGI_CONNS=8 python -m granian --interface rsgi --workers 2 --no-ws \
        --host 127.0.0.1 --port 8000 rsgi_probe:app
"""
import asyncio
import json
import os
from datetime import UTC, timedelta

import psycopg

from connector.clock import utcnow
from connector.receive import store
from connector.receive.events import parse_event
from connector.receive.fingerprint import fingerprint
from connector.receive.signing import HEADERS, Verifier
from connector.settings import load_settings

settings = load_settings()
verifier = Verifier(settings.webhook_secret, settings.webhook_token, settings.allow_unsigned,
                    settings.signature_tolerance)
N = int(os.environ.get("RSGI_CONNS", "8"))
DSN = settings.database_url.replace("postgresql+psycopg://", "postgresql://")


class App:
    def __rsgi_init__(self, loop):
        async def init():
            self.q = asyncio.Queue()
            for _ in range(N):
                c = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
                self.q.put_nowait(c)
        loop.run_until_complete(init())

    def __rsgi_del__(self, loop):
        pass

    async def __rsgi__(self, scope, protocol):
        if scope.path != "/webhooks/qualio":
            protocol.response_bytes(200, [("content-type", "application/json")], b'{"status":"ok"}')
            return
        body = await protocol()
        headers = {n: v for n in HEADERS if (v := scope.headers.get(n)) is not None}
        verified = verifier.verify(headers, body)
        event = parse_event(body)
        fp = fingerprint(event.payload, settings.fingerprint_exclude)
        now = utcnow().replace(tzinfo=None)
        event_time = event.timestamp.astimezone(UTC).replace(tzinfo=None)  # stored as UTC, as store.py binds it
        params = {"fingerprint": fp, "webhook_id": verified.webhook_id, "nc_id": event.nc_id,
                  "event_type": event.event_type, "event_timestamp": event_time,
                  "payload": body.decode(), "now": now, "requeue": False, "source": "webhook",
                  "stale": now - timedelta(seconds=60)}
        conn = await self.q.get()
        try:
            cur = await conn.execute(store._PG_RECORD, params, prepare=True)
            delivery_id, first_seen, *_ = await cur.fetchone()  # re-queue and sightings: not probed
        finally:
            self.q.put_nowait(conn)
        if delivery_id is not None:
            status, answer = 202, {"status": "accepted", "deliveryId": delivery_id, "fingerprint": fp}
        else:
            seen = first_seen.isoformat() + "Z" if first_seen else None
            status, answer = 200, {"status": "duplicate", "fingerprint": fp, "firstSeenAt": seen}
        protocol.response_bytes(status, [("content-type", "application/json")], json.dumps(answer).encode())


app = App()
