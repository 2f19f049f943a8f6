"""Everything that talks to Jira, and nothing that knows about NCs.

Owns the narrow gateway over the `jira` library (client plumbing and errors, issue operations, search, project
checks), the shared Retry-After and careful mode (`throttle`), cached field and user look-ups (`resolver`) and
the pure table from Jira field type to wire shape (`field_shapes`). May import: the core modules only.
"""
