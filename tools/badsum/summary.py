"""The outcome table (topology x condition), as plain text for terminals and logs."""

from __future__ import annotations

from badsum.results import CONDITIONS, TOPOLOGIES


def cell_text(cell: dict | None) -> str:
    if cell is None:
        return "-"
    v = cell["verdict"]
    if v == "error":
        return "error"
    n = cell.get("corrupted_packets")
    msgs = cell.get("messages") or {}
    kind = " (emulated)" if cell.get("condition_kind") == "emulated" else ""
    if v == "corrupt-delivered":
        return f"CORRUPT {msgs.get('corrupt', '?')}/{msgs.get('sent', '?')} msgs, {n} pkts{kind}"
    return f"{v}: {n} pkts, {cell.get('csum_errors_total', 0)} csum{kind}"


def table(cells: list[dict]) -> str:
    by_key = {(c["topology"], c["condition"]): c for c in cells}
    topologies = [t for t in TOPOLOGIES if any(k[0] == t for k in by_key)]
    topologies += sorted({k[0] for k in by_key} - set(topologies))
    conditions = [c for c in CONDITIONS if any(k[1] == c for k in by_key)]
    conditions += sorted({k[1] for k in by_key} - set(conditions))
    header = ["topology", *conditions]
    rows = [[t, *(cell_text(by_key.get((t, c))) for c in conditions)] for t in topologies]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])
