"""Which kernels have the veth fix (ce8c839b74e3), by release number.

Verified in the stable queue (releases/<version>/series lists the backport
"veth: don't modify ip_summed; doing so treats packets with bad checksums as
good"); moby/moby#18776 confirms "3.10, 3.14, 4.1, 4.3". Mainline has it
from 4.4. Branches not listed (3.2, 3.4, 3.12, 3.16, 3.18, 4.2, the Ubuntu
-ckt trees, distribution kernels) are not known to have it: a distribution
may carry the fix under its own numbering, so callers let the user override
(badsum_condition_kernel_fixed).
"""

from __future__ import annotations

import re

FIRST_MAINLINE = (4, 4)
STABLE_FIXED = {
    (3, 10): (3, 10, 96),
    (3, 14): (3, 14, 60),
    (4, 1): (4, 1, 17),
    (4, 3): (4, 3, 5),
}
SOURCES = (
    "stable-queue releases/3.10.96, 3.14.60, 4.1.17, 4.3.5 series files",
    "moby/moby#18776 (Evan Jones, 2016-01-27)",
    "mainline: v4.4",
)


def parse(release: str) -> tuple[int, int, int]:
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not m:
        raise ValueError(f"{release!r} is not a kernel release (like 6.1.0-18-amd64)")
    return int(m[1]), int(m[2]), int(m[3] or 0)


def has_fix(release: str) -> bool:
    version = parse(release)
    if version[:2] >= FIRST_MAINLINE:
        return True
    fixed = STABLE_FIXED.get(version[:2])
    return fixed is not None and version >= fixed
