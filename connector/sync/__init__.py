"""The worker side: claim -> plan -> apply -> record, for one NC at a time.

Owns the queue and its claims and leases (`queue`), the worker loop with retries and dead letters (`worker`),
the pure planning of one NC's sync (`plan`), applying a plan to Jira step by step (`apply`, over `ensure`
for the one issue per NC, `status` for the walk through the workflow, `comments`, and `steps` for what the
steps share), the NC -> issue and comment link tables where each step records what it applied (`links`),
the retry exceptions every stage may raise (`errors`), the LISTEN/NOTIFY wake-up (`wakeup`) and the
workers' heartbeat rows (`heartbeat`).
May import: the core modules, `receive` (what it stored), `jira` and `mapping`. Never `qualio`
(enrichment arrives through the `Enricher` protocol) nor `ops`.
"""
