"""Where VM-lab files live: caches outside the checkout, state per lab."""

from __future__ import annotations

import os
from pathlib import Path

from badsum import paths as project

# Kernels and root filesystems take minutes to build and are shared by every
# checkout and lab on the machine; BADSUM_VM_CACHE moves them (tests use it).
CACHE = Path(os.environ.get("BADSUM_VM_CACHE", "/var/cache/badsum"))
KERNELS = CACHE / "kernels"
ROOTFS = CACHE / "rootfs"
# Per-lab state (sockets, keys, console logs): removed by `badsum lab down`.
# Apart from the embedded labs' /var/lib/badsum/labs, so that neither
# provider mistakes the other's labs for its own.
STATE_ROOT = Path("/var/lib/badsum/vmlabs")

KERNEL_DIR = project.KERNEL  # the lab kernels' configuration and patches, in the checkout
