"""badsum_kernel_has_fix: does a kernel release carry the veth fix? (see badsum.kernels)"""

from __future__ import annotations

from badsum.kernels import has_fix


class FilterModule:
    def filters(self) -> dict:
        return {"badsum_kernel_has_fix": has_fix}
