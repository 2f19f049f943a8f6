"""The webhook side, up to the 202: receive -> verify -> parse -> fingerprint -> store -> answer.

Owns the NC event contract (`events`), Standard Webhooks and bearer verification (`signing`), the canonical JSON
and its hash (`fingerprint`), the one-transaction ingest of fingerprint row + queued delivery (`store`, with
SQLite's `group_commit`), recent duplicates' sightings counted in memory (`sightings`), the deletion of expired
rows (`prune`), the workers' wake-up after commit (`notify`), problem+json answers (`problems`) and the endpoint
itself, a WSGI layer in front of the Flask app (`webhook`), and its steps on an event loop (`webhook_async`,
with `store_async`).
May import: the core modules at the top of `connector` (settings, db, models, clock, metrics, secrets).
Never the later stages (`sync`, `jira`, `mapping`, `qualio`) nor `ops`: ingest must not depend on Jira.
"""
