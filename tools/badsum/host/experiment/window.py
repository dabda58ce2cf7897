"""The corruption window's rule: when it opens, when it closes, and why.

One rule, two places that enforce it: the eBPF injector (shared/programs/corrupt.bpf.c,
on the kernel's clock) and the netem backend's timer on the host (run()
below, driven by what it sees leave the interface). Both follow this model,
and the unit tests drive it with simulated injectors.

The window opens `delay` seconds after the first experiment segment. A
*fixed* window (target 0, the article's shape) then lasts `duration`
seconds. An *evidence* window closes as soon as `target` segments were
damaged - the verdict's min_corrupted plus a margin - or after `duration`
seconds at most, whichever comes first: a stalled stream (TCP backing off
under loss) keeps it open longer, instead of leaving a cell with too little
evidence. Whatever happens, nothing is damaged after `expire` (absolute, on
the same clock): an injector that never saw the traffic goes inert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Why a window closed (the result file's corruption.window_closed_by).
EVIDENCE = "evidence"  # the target number of damaged segments was reached
MAX_DURATION = "max-duration"  # an evidence window's longest duration passed first
DURATION = "duration"  # a fixed window's length passed
NO_TRAFFIC = "no-traffic"  # no experiment segment came before the injector expired
REMOVED = "removed"  # the injector was removed while its window was still open or waiting
REASONS = (EVIDENCE, MAX_DURATION, DURATION, NO_TRAFFIC, REMOVED)


@dataclass
class Window:
    delay: float
    duration: float
    target: int  # 0: a fixed window
    expire: float  # absolute: inert after it, on the same clock as every `now`
    opens: float | None = None  # first segment + delay
    closed: float | None = None
    closed_by: str | None = None
    damaged: int = 0

    def segment(self, now: float) -> bool:
        """An experiment segment passes at `now`: may it be damaged?"""
        self.tick(now)
        if self.closed is not None:
            return False
        if self.opens is None:  # the first segment starts the clock
            self.opens = now + self.delay
        return now >= self.opens

    def damage(self, now: float) -> None:
        """One segment was damaged at `now` (the injector decides which, at its rate)."""
        self.damaged += 1
        if self.target and self.damaged >= self.target and self.closed is None:
            self.close(now, EVIDENCE)

    def tick(self, now: float) -> None:
        """Time passes: close the window at its bound, or give up on traffic that never came."""
        if self.closed is not None:
            return
        if self.opens is None:
            if now >= self.expire:
                self.close(self.expire, NO_TRAFFIC)
        elif now >= min(self.opens + self.duration, self.expire):
            self.close(min(self.opens + self.duration, self.expire), MAX_DURATION if self.target else DURATION)

    def close(self, at: float, why: str) -> None:
        self.closed, self.closed_by = at, why

    def deadline(self) -> float:
        """The next moment tick() may change something (for a timer's sleep)."""
        if self.closed is not None:
            return self.closed
        if self.opens is None:
            return self.expire
        return min(self.opens + self.duration, self.expire)


def closed_by(opens: float | None, end: float | None, target: int, duration: float, now: float, expired: bool) -> dict:
    """Why a window that the kernel enforced closed, from what its map holds (eBPF backend).

    opens: the window's start (None: no segment came); end: when it closed on
    evidence (None: it did not); now: when it was read.
    """
    if opens is None:
        return {"window_start": None, "window_end": None, "window_closed_by": NO_TRAFFIC if expired else REMOVED}
    if end is not None:
        return {"window_start": opens, "window_end": end, "window_closed_by": EVIDENCE}
    if now >= opens + duration:
        why = MAX_DURATION if target else DURATION
        return {"window_start": opens, "window_end": opens + duration, "window_closed_by": why}
    return {"window_start": opens, "window_end": now, "window_closed_by": REMOVED}


# -- a timer that enforces the rule on the host (the netem backend) ---------------------

Event = tuple[float, str]  # (time, "segment" | "damaged"), as the host sees them leave


def run(
    window: Window,
    events: Callable[[float], Iterable[Event]],
    clock: Callable[[], float],
    open_: Callable[[], None],
    shut: Callable[[], None],
) -> Window:
    """Follow the traffic until the window closed, calling open_() and shut() as it opens and closes.

    events(timeout) returns what happened within `timeout` seconds (possibly
    nothing); the caller's injector damages segments once open_() was called.
    Returns the window, closed, with its reason.
    """
    opened = False
    while window.closed is None:
        now = clock()
        window.tick(now)
        if window.closed is not None:
            break
        if window.opens is not None and not opened and now >= window.opens:
            open_()
            opened = True
        wake = window.deadline() if opened or window.opens is None else window.opens
        for at, what in events(max(0.0, wake - now)):
            if what == "segment":
                window.segment(at)
            elif what == "damaged" and opened:
                window.damage(at)
            if window.closed is not None:
                break
    if opened:
        shut()
    return window
