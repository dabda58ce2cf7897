"""The outcome table (topology x condition), as plain text for terminals and logs."""

from __future__ import annotations

CONDITION_ORDER = ("vulnerable", "workaround", "patched")


def cell_text(cell: dict | None) -> str:
    if cell is None:
        return "MISSING (no result)"
    v = cell["verdict"]
    if v == "error":
        return "error"
    n = cell.get("corrupted_packets")
    msgs = cell.get("messages") or {}
    kind = " (emulated)" if cell.get("condition_kind") == "emulated" else ""
    if v == "valid-dropped":
        overlay = cell.get("overlay") or {}
        return f"DROPPED {overlay.get('udp_csum_errors', '?')} csum, connect {cell.get('connect_s', '?')} s{kind}"
    if cell.get("bug") == "vxlan-nat":
        errors = (cell.get("overlay") or {}).get("udp_csum_errors", "?")
        return f"{v}: connect {cell.get('connect_s', '?')} s, {errors} csum{kind}"
    if v == "corrupt-delivered":
        return f"CORRUPT {msgs.get('corrupt', '?')}/{msgs.get('sent', '?')} msgs, {n} pkts{kind}"
    return f"{v}: {n} pkts, {cell.get('csum_errors_total', 0)} csum{kind}"


def grid(cells: list[dict], planned: list[tuple[str, str]] | None = None) -> tuple[list[str], list[str]]:
    """Rows and columns: the planned cells' order, then any other cell found."""
    keys = list(planned or []) + [(c["topology"], c["condition"]) for c in cells]
    topologies = list(dict.fromkeys(t for t, _ in keys))
    found = {c for _, c in keys}
    conditions = [c for c in CONDITION_ORDER if c in found] + sorted(found - set(CONDITION_ORDER))
    return topologies, conditions


def table(cells: list[dict], planned: list[tuple[str, str]] | None = None) -> str:
    by_key = {(c["topology"], c["condition"]): c for c in cells}
    wanted = set(planned or by_key)
    topologies, conditions = grid(cells, planned)
    header = ["topology", *conditions]
    rows = [
        [t, *(cell_text(by_key.get((t, c))) if (t, c) in wanted or (t, c) in by_key else "-" for c in conditions)]
        for t in topologies
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def reasons(cells: list[dict]) -> list[str]:
    return [f"{c['topology']}/{c['condition']}: {c['verdict']} - {c.get('verdict_reason', '')}" for c in cells]
