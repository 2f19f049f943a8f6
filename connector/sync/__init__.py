"""The worker side: claim -> plan -> apply -> record, for one NC at a time.

Owns the queue and its claims and leases (`queue`), the worker loop with retries and dead letters (`worker`),
the pure planning of one NC's sync (`plan`), applying a plan to Jira (`apply`), the NC -> issue and comment
link tables (`links`), the retry exceptions every stage may raise (`errors`) and the LISTEN/NOTIFY wake-up
(`wakeup`). May import: the core modules, `receive` (what it stored), `jira` and `mapping`. Never `qualio`
(enrichment arrives through the `Enricher` protocol) nor `ops`.
"""
