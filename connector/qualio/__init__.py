"""Everything that talks to Qualio's API: the client (budget, errors) and enrichment of thin events.

May import: the core modules and `connector.sync.errors` (enrichment raises the sync stage's retry
exceptions). Never `ops`.
"""
