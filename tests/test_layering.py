"""The package's layout is a rule, not a habit: an AST walk over connector/ fails the build when an import
crosses a stage the wrong way, when a pure module reaches I/O libraries, or when a module outgrows 400 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "connector"
STAGES = ("receive", "sync", "jira", "mapping", "qualio", "ops", "sandbox")
# What each stage may import from the rest of connector, besides the core modules at the top and itself
# (each sub-package's docstring says the same in words).
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "receive": frozenset(),
    "jira": frozenset(),
    "mapping": frozenset({"connector.jira.field_shapes", "connector.jira.workflow"}),
    "qualio": frozenset({"connector.sync.errors", "receive"}),
    "sync": frozenset({"receive", "jira", "mapping"}),
    "ops": frozenset({"receive", "sync", "jira", "mapping", "qualio", "sandbox"}),
    "sandbox": frozenset(),
}
PURE = ("connector.receive.fingerprint", "connector.receive.events", "connector.sync.plan",
        "connector.mapping.render", "connector.jira.field_shapes", "connector.jira.workflow",
        "connector.qualio.drift", "connector.qualio.sweep", "connector.qualio.record")
IO_LIBRARIES = frozenset({"flask", "werkzeug", "sqlalchemy", "psycopg", "requests", "jira", "urllib3"})
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` imports (at any depth: imports inside functions count), relative ones resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def package_modules() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = module_name(path)
        graph[name] = imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    return graph


def stage_of(module: str) -> str:
    if module == "connector.__main__":
        return "ops"  # `python -m connector` is the command line's entry point
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else "core"


def internal(imported: Iterable[str], modules: Mapping[str, object]) -> set[str]:
    """The imports that name a module of the package (`from connector import __version__` names none)."""
    return {name for name in imported if name in modules}


def layering_problems(graph: Mapping[str, set[str]]) -> list[str]:
    problems = []
    for module, imported in sorted(graph.items()):
        stage = stage_of(module)
        for target in sorted(internal(imported, graph)):
            target_stage = stage_of(target)
            if target_stage in ("core", stage) and not (stage == "sandbox" and target_stage == "core"):
                continue
            if target_stage in ALLOWED[stage] or target in ALLOWED[stage]:
                continue
            problems.append(f"{module} ({stage}) imports {target} ({target_stage})")
    return problems


def reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for target in internal(graph[todo.pop()], graph) - seen:
            seen.add(target)
            todo.append(target)
    return seen


def purity_problems(graph: Mapping[str, set[str]], pure: Iterable[str] = PURE) -> list[str]:
    problems = []
    for module in pure:
        for reached in sorted(reachable(graph, module)):
            io = {name.split(".")[0] for name in graph[reached]} & IO_LIBRARIES
            if io:
                via = "" if reached == module else f" through {reached}"
                problems.append(f"{module} is pure but reaches {', '.join(sorted(io))}{via}")
    return problems


def test_every_import_follows_the_stages() -> None:
    assert layering_problems(package_modules()) == []


def test_pure_modules_reach_no_io_library() -> None:
    graph = package_modules()
    assert set(PURE) <= set(graph)
    assert purity_problems(graph) == []


def test_the_checks_catch_what_they_are_for() -> None:
    graph = {
        "connector.models": {"sqlalchemy"},
        "connector.receive.store": {"connector.sync.queue", "connector.models"},
        "connector.sync.queue": {"connector.ops.views"},
        "connector.ops.views": set(),
        "connector.sandbox.app": {"connector.settings", "flask"},
        "connector.settings": set(),
        "connector.sync.plan": {"connector.models"},
    }
    assert layering_problems(graph) == [
        "connector.receive.store (receive) imports connector.sync.queue (sync)",
        "connector.sandbox.app (sandbox) imports connector.settings (core)",
        "connector.sync.queue (sync) imports connector.ops.views (ops)",
    ]
    assert purity_problems(graph, ["connector.sync.plan"]) == [
        "connector.sync.plan is pure but reaches sqlalchemy through connector.models"]


def test_relative_imports_are_resolved() -> None:
    assert "connector.sandbox.jql" in imports_of("from .jql import parse_jql", "connector.sandbox.search")
    assert "connector.sandbox.jql" in imports_of("from . import jql", "connector.sandbox", is_package=True)
    assert "connector.settings" in imports_of("from ..settings import X", "connector.sandbox.app")


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_says_what_it_owns_and_may_import(stage: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text(encoding="utf-8")))
    assert doc and len(doc) > 80
    if stage != "sandbox":
        assert "import" in doc


def test_no_module_is_over_400_lines() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines())
             for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
