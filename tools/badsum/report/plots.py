"""The report's plots: data first (testable), then PNG bytes rendered with matplotlib.

PNGs carry no timestamp or software tag, so rebuilding a report from the same
result files gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: rendering to files only
import matplotlib.pyplot as plt

from badsum.analysis.signature import bit_offsets_mod32


@dataclass
class TimelineData:
    times: list[float]  # seconds from the first send, at every event
    intact: list[int]  # messages arrived intact so far
    corrupt: list[int]  # messages arrived corrupt so far
    pending: list[int]  # sent, not arrived yet
    window: tuple[float, float] | None


def timeline_data(cell: dict) -> TimelineData:
    events: list[tuple[float, str]] = []
    timeline = cell.get("timeline") or []
    if not timeline:
        return TimelineData([], [], [], [], None)
    t0 = min(m["sent"] for m in timeline)
    for m in timeline:
        events.append((m["sent"] - t0, "sent"))
        if m.get("arrived") is not None:
            events.append((m["arrived"] - t0, m["status"]))
    events.sort(key=lambda e: (e[0], e[1] != "sent"))
    times, intact, corrupt, pending = [], [], [], []
    n_sent = n_intact = n_corrupt = 0
    for t, kind in events:
        n_sent += kind == "sent"
        n_intact += kind == "intact"
        n_corrupt += kind == "corrupt"
        times.append(t)
        intact.append(n_intact)
        corrupt.append(n_corrupt)
        pending.append(n_sent - n_intact - n_corrupt)
    corruption = cell.get("corruption") or {}
    window = None
    if corruption.get("window_start") is not None and corruption.get("window_end") is not None:
        window = (corruption["window_start"] - t0, corruption["window_end"] - t0)
    return TimelineData(times, intact, corrupt, pending, window)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def timeline_png(cell: dict) -> bytes:
    data = timeline_data(cell)
    fig, ax = plt.subplots(figsize=(7, 2.6))
    if data.window:
        ax.axvspan(*data.window, color="#f4c7c3", label="corruption window")
    ax.step(data.times, data.intact, where="post", color="#2e7d32", label="intact")
    ax.step(data.times, data.corrupt, where="post", color="#c62828", label="corrupt")
    ax.step(data.times, data.pending, where="post", color="#1565c0", label="pending")
    ax.set_xlabel("seconds since the first message")
    ax.set_ylabel("messages")
    ax.set_title(f"{cell['topology']} / {cell['condition']}", fontsize=10)
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    return _png(fig)


def offsets_png(cell: dict) -> bytes:
    counts = bit_offsets_mod32(cell)
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.bar(range(32), [counts.get(i, 0) for i in range(32)], color="#c62828")
    ax.set_xlabel("offset of the flipped bit in the stream, mod 32 bytes")
    ax.set_ylabel("bits")
    ax.set_xticks(range(0, 32, 4))
    fig.tight_layout()
    return _png(fig)


def connect_times(cells: list[dict]) -> list[tuple[str, float]]:
    """(cell, seconds its connection took to open), for the cells whose client recorded it."""
    return [
        (f"{c['topology']}/{c['condition']}", float(c["connect_s"]))
        for c in cells
        if isinstance(c.get("connect_s"), (int, float))
    ]


def connect_times_png(cells: list[dict]) -> bytes:
    """One bar per cell: a dropped SYN shows as a wait of TCP's first retransmission timeout (1 s)."""
    data = connect_times(cells)
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.35 * max(1, len(data))))
    names = [n for n, _ in data]
    seconds = [s for _, s in data]
    ax.barh(names, seconds, color=["#c62828" if s >= 0.8 else "#2e7d32" for s in seconds])
    ax.axvline(1.0, color="#888888", linestyle=":", linewidth=1)
    ax.set_xlabel("seconds to open the connection (dotted: TCP's first SYN retransmission)")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return _png(fig)
