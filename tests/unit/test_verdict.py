from __future__ import annotations

import pytest

from badsum.analysis.verdict import CLEAN, CORRUPT, INCONCLUSIVE, Evidence, decide


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (Evidence(corrupt_messages=2, missing_messages=0, corrupted_packets=9, csum_errors_total=0), CORRUPT),
        (Evidence(0, 0, 9, 9), CLEAN),
        (Evidence(0, 0, 0, 0), INCONCLUSIVE),  # nothing on the wire proves nothing
        (Evidence(0, 0, 2, 2), INCONCLUSIVE),  # below the minimum
        (Evidence(0, 3, 9, 9), INCONCLUSIVE),  # TCP did not recover
        (Evidence(0, 0, 9, 0), INCONCLUSIVE),  # drops not accounted for
        (Evidence(0, 0, None, 5), INCONCLUSIVE),  # count unknown
        (Evidence(1, 5, 0, 0), CORRUPT),  # corrupt data delivered trumps everything
    ],
)
def test_decide(evidence: Evidence, expected: str) -> None:
    verdict, reason = decide(evidence, min_corrupted=3)
    assert verdict == expected
    assert reason


def test_minimum_is_configurable() -> None:
    assert decide(Evidence(0, 0, 2, 2), min_corrupted=1)[0] == CLEAN
