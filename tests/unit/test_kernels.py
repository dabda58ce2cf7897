from __future__ import annotations

import pytest

from badsum.host.kernels import has_fix, parse


@pytest.mark.parametrize(
    ("release", "fixed"),
    [
        ("6.18.44-fc-v782", True),
        ("4.4.0-21-generic", True),
        ("4.3.4", False),
        ("4.3.5", True),
        ("4.2.8", False),
        ("4.1.16", False),
        ("4.1.17", True),
        ("3.18.25", False),
        ("3.14.59", False),
        ("3.14.60", True),
        ("3.13.0-24-generic", False),
        ("3.10.95", False),
        ("3.10.96", True),
        ("3.2.0-4-amd64", False),
        ("2.6.32-754.el6", False),
    ],
)
def test_fixed_releases(release: str, fixed: bool) -> None:
    assert has_fix(release) is fixed


def test_bad_release_is_refused() -> None:
    with pytest.raises(ValueError, match="not a kernel release"):
        parse("banana")
