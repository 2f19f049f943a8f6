"""The sandbox's command line (`python -m connector.sandbox`) and its configuration checks."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

import connector.sandbox.__main__ as sandbox_main
from connector.sandbox import SandboxConfig, add_arguments, options_from_args


def test_command_line_options(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "8123", "--deployment-type", "Cloud", "--search-lag", "1.5",
                              "--no-legacy-search", "--quiet"])
    options = options_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 8123)
    assert options["deployment_type"] == "Cloud" and options["legacy_search"] is False and options["quiet"] is True
    SandboxConfig(**{k: v for k, v in options.items() if k != "quiet"})  # every option is a config field
    seen: list[tuple[str, int, dict[str, Any]]] = []
    monkeypatch.setattr(sandbox_main, "run", lambda host, port, **kw: seen.append((host, port, kw)))
    assert sandbox_main.main(["--host", "0.0.0.0", "--port", "9000", "--project-key", "NC"]) == 0
    assert seen[0][:2] == ("0.0.0.0", 9000) and seen[0][2]["project_key"] == "NC"


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="deployment_type"):
        SandboxConfig(deployment_type="DataCenter")
    with pytest.raises(ValueError, match="project_key"):
        SandboxConfig(project_key="qa")
