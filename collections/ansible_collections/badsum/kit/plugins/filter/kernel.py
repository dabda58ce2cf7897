# SPDX-License-Identifier: GPL-2.0-only
"""badsum.kit.kernel_has_fix: does a kernel release carry the veth fix (ce8c839b74e3)?"""

from __future__ import annotations

DOCUMENTATION = r"""
name: kernel_has_fix
short_description: Does a kernel release carry the veth fix?
description:
  - True for mainline 4.4 and later and for the stable releases that took the
    backport (3.10.96, 3.14.60, 4.1.17, 4.3.5); false otherwise. Distribution
    kernels may carry the fix under their own numbering, so the experiment lets
    the user say (C(badsum_experiment_kernel_fixed)).
positional: _input
options:
  _input:
    description: A kernel release, such as C(6.1.0-18-amd64).
    type: str
    required: true
"""

EXAMPLES = r"""
fixed: "{{ '4.1.16' | badsum.kit.kernel_has_fix }}"  # false
"""

RETURN = r"""
_value:
  description: Whether the release has the fix.
  type: bool
"""


def kernel_has_fix(release: str) -> bool:
    from badsum.host.shared.kernels import has_fix  # the controller's badsum package

    return has_fix(str(release))


class FilterModule:
    def filters(self) -> dict:
        return {"kernel_has_fix": kernel_has_fix}
