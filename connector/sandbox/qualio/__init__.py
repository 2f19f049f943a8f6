"""A small Qualio stand-in, shaped after Qualio's OpenAPI description, for the demo, the tests and the bench.

    GET  /v1/events/templates                      eventTemplateResp ({items, total})
    GET  /v1/events/events?status=S&offset=&limit=&event_template_matrix_id=
                                                   eventQueryResponse: summaries of status S (required; 400
                                                   genericBadRequest400ParametersResponse otherwise), sliced by
                                                   offset/limit (no maximum), in creation order, or newest change
                                                   first with order="modified"
    GET  /v1/events/events/{code}                  eventDetailed (steps empty), 404 generic404
    every /v1 request: X-Api-Key required (403 otherwise); at most `limit_per_minute` (default 200) in any
    sliding 60 s, 429 throttledResponse beyond (no Retry-After, as documented)

Control API (no key, not counted):

    GET  /_qualio/health, /_qualio/stats  {"requests", "byKind": {templates, list, detail}, "throttled",
                                           "times": [epoch seconds], "peakPerMinute"}
    GET  /_qualio/events   {"events": [{code, status, modified_at}]}: every event
    POST /_qualio/events   {"prefix": "NCR", "status": "open", "title": ...}: a new event (answers it)
    POST /_qualio/events/{code}  {"title": ..., "status": ...}: a change (modified_at = now)
    POST /_qualio/throttle {"count": N}: the next N API requests answer 429

Run it: ``python -m connector.sandbox.qualio --port 8099 --events 1000`` (see --help), or in-process:
``with start_in_thread(state) as qualio: qualio.url``. Imports nothing else of ``connector``.
"""

from __future__ import annotations

from connector.sandbox.qualio.server import RunningQualio, make_server, start_in_thread
from connector.sandbox.qualio.state import STATUSES, QualioState, peak_per_minute

__all__ = ["STATUSES", "QualioState", "RunningQualio", "make_server", "peak_per_minute", "start_in_thread"]
