"""The corruption window's rule (tools/badsum/host/experiment/window.py), driven by simulated injectors.

window.run() is the netem backend's timer itself; the injector and the
stream it sees are simulated here on a fake clock: the segments a TCP
sender would put on the wire, and an injector that damages each one at its
rate while the window is open. Each scenario checks that the window closes,
and closes for the right reason, on every seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from badsum.host.experiment import window

DELAY, MAX, TARGET, EXPIRE = 0.5, 2.0, 5, 60.0


@dataclass
class SimulatedInjector:
    """Segments leave at `times`; while open, each is damaged with probability `rate`."""

    times: list[float]
    rate: float
    seed: int = 0
    now: float = 0.0
    open: bool = False
    opened_at: list[float] = field(default_factory=list)
    shut_at: list[float] = field(default_factory=list)
    damaged: list[float] = field(default_factory=list)
    calls: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.pending = sorted(self.times)

    def clock(self) -> float:
        return self.now

    def events(self, timeout: float) -> list[window.Event]:
        """What the timer's tcpdump would print within `timeout` (the clock moves on)."""
        self.calls += 1
        assert self.calls < 100_000, "the timer spins: it waits for a moment that never closes the window"
        until = self.now + timeout
        if not self.pending or self.pending[0] > until:
            self.now = until
            return []
        at = self.pending.pop(0)
        self.now = max(self.now, at)
        out: list[window.Event] = [(at, "segment")]
        if self.open and self.rng.random() < self.rate:
            self.damaged.append(at)
            out.append((at, "damaged"))
        return out

    def open_(self) -> None:
        self.open = True
        self.opened_at.append(self.now)

    def shut(self) -> None:
        self.open = False
        self.shut_at.append(self.now)

    def run(self, target: int = TARGET, duration: float = MAX) -> window.Window:
        w = window.Window(DELAY, duration, target, EXPIRE)
        return window.run(w, self.events, self.clock, self.open_, self.shut)


def steady(start: float, rate_per_s: float, seconds: float) -> list[float]:
    return [start + i / rate_per_s for i in range(int(seconds * rate_per_s))]


@pytest.mark.parametrize("seed", range(50))
def test_a_steady_stream_closes_the_window_on_evidence(seed: int) -> None:
    sim = SimulatedInjector(steady(1.0, 60, 10), rate=0.1, seed=seed)
    w = sim.run()
    assert w.closed_by == window.EVIDENCE
    assert w.damaged == len(sim.damaged) == TARGET
    assert w.opens == pytest.approx(1.0 + DELAY)
    assert w.opens <= w.closed <= w.opens + MAX and w.closed == sim.damaged[-1]
    # the injector was set up once and removed once, and damaged nothing outside the window
    assert sim.opened_at == [pytest.approx(w.opens, abs=0.02)] and sim.shut_at == [sim.damaged[-1]]
    assert all(w.opens <= t <= w.closed for t in sim.damaged)


@pytest.mark.parametrize("seed", range(20))
def test_a_stream_with_few_segments_closes_at_the_longest_duration(seed: int) -> None:
    # Three segments in all: the target can never be reached.
    sim = SimulatedInjector([1.0, 1.6, 2.2], rate=1.0, seed=seed)
    w = sim.run()
    assert w.closed_by == window.MAX_DURATION
    assert w.closed == pytest.approx(1.0 + DELAY + MAX)
    assert w.damaged == len(sim.damaged) == 2 < TARGET  # 1.6 and 2.2: the first one only opened the clock
    assert sim.shut_at == [pytest.approx(w.closed)]


@pytest.mark.parametrize("seed", range(20))
def test_a_stalled_stream_keeps_the_window_open_until_its_longest_duration(seed: int) -> None:
    # TCP backs off under loss: a burst, a silence longer than the window, then the stream again.
    times = steady(1.0, 60, 0.6) + steady(1.0 + DELAY + MAX + 1.0, 60, 5)
    sim = SimulatedInjector(times, rate=0.05, seed=seed)
    w = sim.run()
    assert w.closed_by in (window.MAX_DURATION, window.EVIDENCE)
    if w.closed_by == window.MAX_DURATION:
        assert w.closed == pytest.approx(1.0 + DELAY + MAX) and w.damaged < TARGET
    else:
        assert w.damaged == TARGET and w.closed < 1.0 + DELAY + MAX
    assert not [t for t in sim.damaged if t > w.closed], "damage after the window closed"


@pytest.mark.parametrize("seed", range(20))
def test_a_stall_inside_the_window_is_waited_out_and_the_evidence_still_closes_it(seed: int) -> None:
    # The stream stalls before the window opens (1.5) and resumes 1.2 s into it: the window waits.
    times = steady(1.0, 60, 0.45) + steady(2.7, 200, 0.8)
    sim = SimulatedInjector(times, rate=0.3, seed=seed)
    w = sim.run()
    assert w.closed_by == window.EVIDENCE and w.damaged == TARGET
    assert w.closed > 2.7  # it waited through the stall


def test_a_stream_that_never_starts_leaves_the_injector_unset_and_inert_at_its_expiry() -> None:
    sim = SimulatedInjector([], rate=1.0)
    w = sim.run()
    assert w.closed_by == window.NO_TRAFFIC
    assert w.opens is None and w.closed == EXPIRE and sim.now >= EXPIRE
    assert sim.opened_at == [] and sim.shut_at == [] and sim.damaged == []


def test_a_stream_that_starts_after_the_expiry_is_never_corrupted() -> None:
    sim = SimulatedInjector(steady(EXPIRE + 1, 60, 5), rate=1.0)
    w = sim.run()
    assert w.closed_by == window.NO_TRAFFIC and sim.damaged == [] and sim.opened_at == []


@pytest.mark.parametrize("seed", range(10))
def test_a_fixed_window_lasts_its_duration_whatever_it_damaged(seed: int) -> None:
    # The article's shape: target 0, every segment damaged, the window still lasts its length.
    sim = SimulatedInjector(steady(1.0, 20, 20), rate=1.0, seed=seed)
    w = sim.run(target=0, duration=10.0)
    assert w.closed_by == window.DURATION
    assert w.closed == pytest.approx(1.0 + DELAY + 10.0)
    # A segment at the very end may still be damaged before the timer removes netem: not counted.
    assert w.damaged == len([t for t in sim.damaged if t < w.closed]) >= 190
    assert max(sim.damaged) <= w.closed


@settings(max_examples=300, deadline=None)
@given(
    times=st.lists(st.floats(0, 20, allow_nan=False), max_size=300),
    rate=st.floats(0, 1),
    target=st.integers(0, 8),
    seed=st.integers(0, 2**16),
)
def test_every_window_closes_once_for_exactly_one_right_reason(
    times: list[float], rate: float, target: int, seed: int
) -> None:
    sim = SimulatedInjector(times, rate=rate, seed=seed)
    w = sim.run(target=target)
    assert w.closed is not None and w.closed_by in window.REASONS
    opened = [t for t in sorted(times) if t < EXPIRE]
    if not opened:
        assert w.closed_by == window.NO_TRAFFIC and sim.opened_at == sim.shut_at == []
        return
    assert w.opens == pytest.approx(opened[0] + DELAY)
    longest = w.opens + MAX
    if target and w.damaged >= target:
        assert w.closed_by == window.EVIDENCE and w.damaged == target and w.closed <= longest
    else:
        assert w.closed_by == (window.MAX_DURATION if target else window.DURATION)
        assert w.closed == pytest.approx(longest)
    assert len(sim.shut_at) == len(sim.opened_at) <= 1
    assert all(t <= w.closed for t in sim.damaged)


@pytest.mark.parametrize(
    ("opens", "end", "target", "now", "expired", "why"),
    [
        (None, None, 5, 100.0, True, window.NO_TRAFFIC),
        (None, None, 5, 100.0, False, window.REMOVED),
        (10.0, 10.4, 5, 100.0, True, window.EVIDENCE),
        (10.0, None, 5, 100.0, False, window.MAX_DURATION),
        (10.0, None, 0, 100.0, False, window.DURATION),
        (10.0, None, 5, 11.0, False, window.REMOVED),
    ],
)
def test_why_a_kernel_enforced_window_closed_is_read_from_its_map(opens, end, target, now, expired, why) -> None:
    found = window.closed_by(opens, end, target, MAX, now, expired)
    assert found["window_closed_by"] == why
    if why == window.EVIDENCE:
        assert found["window_end"] == end
    elif why in (window.MAX_DURATION, window.DURATION):
        assert found["window_end"] == opens + MAX
