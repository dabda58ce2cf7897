"""The run report: report.html (self-contained) and report.md, from a run's files alone.

    results/<run>/report.html   table, per-cell evidence, plots embedded as data: URIs
    results/<run>/report.md     the same in Markdown, plots as files in report-plots/

A result file that cannot be used is named with the field at fault, marked in
the table, and the rest of the report is still built.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from badsum.analysis import incident, results, summary
from badsum.report import plots
from badsum.version import version

# What a cell needs for its detail section; an error cell needs only the first three.
REQUIRED = ("topology", "condition", "verdict")
REQUIRED_MEASURED = (
    "condition_kind",
    "corrupted_packets",
    "messages",
    "csum_errors",
    "timeline",
    "corruption",
    "held_messages",
    "verdict_reason",
)
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Cell:
    topology: str
    condition: str
    data: dict = field(default_factory=dict)
    problem: str | None = None  # why the file could not be used
    plots: dict[str, bytes] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        return f"cell-{self.topology}-{self.condition}"

    @property
    def verdict(self) -> str:
        return "unusable" if self.problem else self.data["verdict"]

    @property
    def expected(self) -> str:
        return incident.expected(self.topology, self.condition, self.data.get("conntrack_checksum", ""))

    def b64(self, name: str) -> str:
        return base64.b64encode(self.plots[name]).decode()


def load_cells(run_dir: Path) -> list[Cell]:
    cells = []
    for path in sorted(run_dir.glob("*-*.json")):
        name = path.stem
        topology, _, condition = name.rpartition("-")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            cells.append(Cell(topology, condition, problem=f"{path}: not valid JSON ({exc})"))
            continue
        missing = [k for k in REQUIRED if k not in data]
        if not missing and data["verdict"] != "error":
            missing = [k for k in REQUIRED_MEASURED if k not in data]
        if missing:
            cells.append(Cell(topology, condition, data, problem=f"{path}: field {missing[0]!r} is missing"))
            continue
        cells.append(Cell(data["topology"], data["condition"], data))
    return cells


def render_plots(cell: Cell) -> None:
    if cell.problem or cell.data["verdict"] == "error":
        return
    cell.plots["timeline"] = plots.timeline_png(cell.data)
    if cell.data["verdict"] == "corrupt-delivered":
        cell.plots["offsets"] = plots.offsets_png(cell.data)


def grid(cells: list[Cell], planned: list[tuple[str, str]]) -> tuple[list[str], list[str], dict]:
    by_key = {(c.topology, c.condition): c for c in cells}
    for key in planned:  # asked for, never judged: shown, not hidden
        if key not in by_key:
            by_key[key] = Cell(*key, problem=f"{key[0]}/{key[1]} was planned but has no result file")
    topologies, conditions = summary.grid([{"topology": t, "condition": c} for t, c in by_key], planned)
    return topologies, conditions, by_key


def comparison(cells: list[Cell], other: list[Cell]) -> list[dict]:
    mine = {(c.topology, c.condition): c.verdict for c in cells}
    theirs = {(c.topology, c.condition): c.verdict for c in other}
    rows = []
    for key in sorted(set(mine) | set(theirs)):
        a, b = mine.get(key, "-"), theirs.get(key, "-")
        rows.append({"cell": f"{key[0]}/{key[1]}", "this": a, "other": b, "same": a == b})
    return rows


def context(run_dir: Path, compare: Path | None = None) -> dict:
    cells = load_cells(run_dir)
    for cell in cells:
        render_plots(cell)
    topologies, conditions, by_key = grid(cells, results.planned_cells(run_dir))
    cells = [by_key[(t, c)] for t in topologies for c in conditions if (t, c) in by_key]
    run_info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    settings = {
        k.removeprefix("badsum_experiment_"): v
        for k, v in run_info.get("plan", {}).get("settings", {}).items()
        if k not in ("badsum_experiment_results_dir", "badsum_experiment_run_id")
    }
    other = load_cells(compare) if compare else None
    measured = [c.data for c in cells if not c.problem and c.data.get("verdict") != "error"]
    connect_plot = plots.connect_times_png(measured) if plots.connect_times(measured) else None
    return {
        "connect_plot": base64.b64encode(connect_plot).decode() if connect_plot else None,
        "connect_times": plots.connect_times(measured),
        "run_id": run_dir.name,
        "cells": cells,
        "topologies": topologies,
        "conditions": conditions,
        "by_key": by_key,
        "run": run_info,
        "settings": settings,
        "problems": [c.problem for c in cells if c.problem],
        "matches_incident": all(c.verdict == c.expected for c in cells) and bool(cells),
        "incident_source": incident.sources(topologies),
        "incident_summary": incident.summaries(topologies),
        "compare_id": compare.name if compare else None,
        "comparison": comparison(cells, other) if other is not None else None,
        "built": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "badsum_version": version(),
    }


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def build(run_dir: Path, compare: Path | None = None) -> dict[str, Path]:
    ctx = context(run_dir, compare)
    env = _env()
    html = run_dir / "report.html"
    results.atomic_write(html, env.get_template("report.html.j2").render(**ctx))
    plot_dir = run_dir / "report-plots"
    plot_dir.mkdir(exist_ok=True)
    for cell in ctx["cells"]:
        for name, png in cell.plots.items():
            results.atomic_write(plot_dir / f"{cell.topology}-{cell.condition}-{name}.png", png)
    if ctx["connect_plot"]:
        results.atomic_write(plot_dir / "connect-times.png", base64.b64decode(ctx["connect_plot"]))
    md = run_dir / "report.md"
    results.atomic_write(md, env.get_template("report.md.j2").render(**ctx))
    return {"html": html, "md": md, "problems": ctx["problems"]}
