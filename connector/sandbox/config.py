"""The sandbox's start-up options (`SandboxConfig`): project, credentials, deployment type, workflow, lag and
latency."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from connector.sandbox.workflow_file import load_workflow
from connector.sandbox.workflows import WorkflowDef


@dataclass(frozen=True)
class SandboxConfig:
    """Start-up options; `SandboxState.reset()` returns the sandbox to exactly these."""

    project_key: str = "QA"
    project_name: str = "Quality Assurance"
    email: str = "sandbox@example.com"
    token: str = "sandbox-token"
    pat: str = "sandbox-pat"
    deployment_type: str = "Server"
    search_lag: float = 0.0
    latency: float = 0.0
    legacy_search: bool = True
    base_url: str | None = None
    # A built-in workflow's name (review, cloud, classic, gated) or the path of a JSON workflow file.
    workflow: str = "review"
    # Answer GET issue without `transitions` even when expand=transitions asks for them, as some servers do.
    ignore_issue_expand: bool = False
    # The chosen workflow itself, loaded (and checked) from `workflow`.
    definition: WorkflowDef = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.deployment_type not in ("Server", "Cloud"):
            raise ValueError(f"deployment_type must be 'Server' or 'Cloud', not {self.deployment_type!r}")
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,9}", self.project_key):
            raise ValueError(f"project_key must look like a Jira project key, not {self.project_key!r}")
        if self.search_lag < 0 or self.latency < 0:
            raise ValueError("search_lag and latency must not be negative")
        object.__setattr__(self, "definition", load_workflow(self.workflow))

    @property
    def cloud(self) -> bool:
        return self.deployment_type == "Cloud"
