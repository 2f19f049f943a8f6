"""The sandbox's start-up options (`SandboxConfig`): project, credentials, deployment type, lag and latency."""

from __future__ import annotations

import re
from dataclasses import dataclass


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

    def __post_init__(self) -> None:
        if self.deployment_type not in ("Server", "Cloud"):
            raise ValueError(f"deployment_type must be 'Server' or 'Cloud', not {self.deployment_type!r}")
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,9}", self.project_key):
            raise ValueError(f"project_key must look like a Jira project key, not {self.project_key!r}")
        if self.search_lag < 0 or self.latency < 0:
            raise ValueError("search_lag and latency must not be negative")

    @property
    def cloud(self) -> bool:
        return self.deployment_type == "Cloud"
