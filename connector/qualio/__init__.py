"""Everything that talks to Qualio's API: the client (errors; its budget is the installation's, shared
through the database by `connector.budgets`), enrichment of thin events, and reconcile (`reconcile`: sweep
Qualio's event list, `sweep` the offset paging over a changing set, `drift` the decision, pure; queued
through `connector.receive.store`; `reconcile_store` its tables; `periodic` the run in the worker).

May import: the core modules, `connector.sync.errors` (enrichment raises the sync stage's retry
exceptions) and `connector.receive` (reconcile queues a delivery through the webhook's own door). Never `ops`.
"""
