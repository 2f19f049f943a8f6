"""The user's mapping files: loading and validating them, and rendering an NC into Jira fields (pure).

Owns the data model and shared vocabulary (`rules`), reading and validating the TOML (`load`),
the sandboxed Jinja templates and their load-time checks (`templates`), and rendering (`render`).
May import: the core modules and `connector.jira.field_shapes` (pure). No I/O beyond reading the file.
"""
