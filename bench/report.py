"""The machine, section 5 (peak memory), and the Markdown table written to bench/results/latest.md."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from importlib import metadata

from bench import procs
from bench.context import Context, Row

MB = 1024  # VmHWM is in kB


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def machine(ctx: Context) -> list[tuple[str, str]]:
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown")
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), 0)
    versions = []
    for package in ("flask", "gunicorn", "sqlalchemy", "psycopg", "werkzeug"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    pg = "not used"
    if ctx.pg is not None and ctx.pg.created:
        try:
            settings = ctx.pg.settings()
            pg = f"{ctx.pg.version()} ({', '.join(f'{k}={v}' for k, v in settings.items())})"
        except Exception as exc:  # the report must still be written
            pg = f"unknown ({type(exc).__name__})"
    return [
        ("nproc", str(os.cpu_count())),
        ("CPU", model),
        ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("Python", sys.version.split()[0]),
        ("PostgreSQL", pg),
        ("SQLite", sqlite3.sqlite_version),
        ("packages", ", ".join(versions)),
    ]


def memory_rows(ctx: Context) -> None:
    """Section 5: the peak resident set (VmHWM) of each kind of process over the whole run."""
    peaks: dict[str, tuple[int, str]] = {}
    for proc in procs.started():
        for pid, (kind, kb) in proc.peak_kb.items():
            name = {"ours-web": "nc-connector serve (server main process)", "ours-web-child": "nc-connector web worker",
                    "ours-sync-worker": "nc-connector sync worker", "ours-cli": "nc-connector prune",
                    "baseline-web": "baseline gunicorn arbiter", "baseline-web-child": "baseline web worker"}.get(kind)
            if name is None:
                continue
            if kb > peaks.get(name, (0, ""))[0]:
                peaks[name] = (kb, f"{proc.name} pid {pid}")
    order = ("nc-connector web worker", "nc-connector serve (server main process)", "nc-connector sync worker",
             "nc-connector prune", "baseline web worker", "baseline gunicorn arbiter")
    for name in order:
        if name not in peaks:
            continue
        kb, where = peaks[name]
        ours = name.startswith("nc-connector")
        ctx.add("5 memory", f"peak RSS (VmHWM), {name}", f"{kb / MB:.0f} MB", where, "",
                "< 150 MB" if ours else "", ("ok" if kb < 150 * MB else "MISS") if ours else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: list[Row]) -> str:
    head = ["section", "figure", "nc-connector", "baseline / reference", "ratio", "target", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(x) for x in (r.section, r.figure, r.ours, r.reference, r.ratio,
                                                           r.target, r.verdict)) + " |")
    return "\n".join(lines)


def render(ctx: Context, command: str, started: str, elapsed: float, loads: tuple[str, str],
           settings: list[str]) -> str:
    parts = [f"# nc-connector bench: {ctx.config.mode} mode", "",
             f"Run {started} UTC, {elapsed / 60:.1f} min. Command: `{command}`", "",
             "## Machine", ""]
    parts += [f"- {k}: {v}" for k, v in machine(ctx)]
    parts += [f"- load average (1/5/15 min) at start: {loads[0]}; at end: {loads[1]}", "",
              "## Settings", ""]
    parts += [f"- {s}" for s in settings]
    parts += ["", "## Figures", "", table(ctx.rows), ""]
    misses = [r for r in ctx.rows if r.verdict == "MISS"]
    parts += ["## Verdict", "",
              f"{len(misses)} of {sum(1 for r in ctx.rows if r.verdict)} targets missed"
              + (": " + "; ".join(f"{r.section} {r.figure}" for r in misses) if misses else "."), ""]
    if ctx.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in ctx.notes] + [""]
    if ctx.details:
        parts += ["## Details (every run)", "", "```", *ctx.details, "```", ""]
    return "\n".join(parts)
