"""The user's mapping files: loading and validating them, and rendering an NC into Jira fields (pure).

Owns the TOML schema and its checks (`load`), the sandboxed Jinja templates and rendering (`render`).
May import: the core modules and `connector.jira.field_shapes` (pure). No I/O beyond reading the file.
"""
