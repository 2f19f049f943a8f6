"""nc-connector: Qualio non-conformance webhooks in, exactly one Jira issue per NC out."""

__version__ = "0.1.0"
