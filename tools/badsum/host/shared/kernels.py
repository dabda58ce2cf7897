"""Which kernels have the veth fix (ce8c839b74e3), by release string, with the source of each answer.

    classify("4.1.17")                        fixed: stable backport
    classify("3.10.0-327.el7.x86_64")         unknown: a distribution kernel the table does not know
    classify("3.0.101-77-default")            fixed: SUSE's backport (SUSE-SU-2016:1672-1)

Mainline has the fix from 4.4, and four stable branches got the backport.
A distribution numbers its kernels its own way and carries fixes the
version number does not show, so a release with a distribution's suffix is
judged only by the table of distribution kernels below; anything else is
`unknown`, and the fleet audit's active probe (probe.py) decides from the
kernel's behaviour instead. Callers of has_fix() let the user override
(badsum_experiment_kernel_fixed).
"""

import re
from typing import Optional, Tuple

FIRST_MAINLINE = (4, 4)
MAINLINE_SOURCE = "mainline: v4.4 (commit ce8c839b74e3, merged for 4.4-rc6)"
# Stable branches with the backport "veth: don't modify ip_summed; doing so
# treats packets with bad checksums as good": the first release of each.
STABLE_FIXED = {
    (3, 10): (3, 10, 96),
    (3, 14): (3, 14, 60),
    (4, 1): (4, 1, 17),
    (4, 3): (4, 3, 5),
}
STABLE_SOURCE = "stable-queue releases/{} series; moby/moby#18776 (3.10, 3.14, 4.1, 4.3)"


class Distro:
    """A distribution kernel line: how to recognise it, and its first release with the backport."""

    def __init__(self, name: str, pattern: str, base: Tuple[int, ...], first_fixed: Tuple[int, ...], source: str):
        self.name, self.pattern, self.base = name, re.compile(pattern), base
        self.first_fixed, self.source = first_fixed, source

    def judge(self, release: str) -> Optional[Tuple[str, str]]:
        """(status, why) when the release belongs to this line, else None (SP4 builds are 63+, SP3's 0.x)."""
        m = self.pattern.match(release)
        if not m or tuple(int(x) for x in m["base"].split(".")) != self.base:
            return None
        build = tuple(int(x) for x in m["build"].split("."))
        first = ".".join(map(str, self.first_fixed))
        if build >= self.first_fixed:
            return "fixed", f"{self.name} build {m['build']} >= {first}, which carries the backport"
        return "unfixed", f"{self.name} build {m['build']} < {first}, the first with the backport"


DISTROS = (
    Distro(
        "SUSE SLES 11 SP4",
        r"^(?P<base>3\.0\.101)-(?P<build>[1-9]\d*(?:\.\d+)*)-(?:default|xen|pae|trace|ppc64|bigsmp|ec2)$",
        (3, 0, 101),
        (77,),
        "SUSE-SU-2016:1672-1 (kernel 3.0.101-77.1)",
    ),
    Distro(
        "SUSE SLES 11 SP3 LTSS",
        r"^(?P<base>3\.0\.101)-(?P<build>0(?:\.\d+)+)-(?:default|xen|pae|trace|ppc64|bigsmp|ec2)$",
        (3, 0, 101),
        (0, 47, 86),
        "SUSE-SU-2016:2245-1 (kernel 3.0.101-0.47.86.1)",
    ),
    Distro(
        "Oracle UEK R3",
        r"^(?P<base>3\.8\.13)-(?P<build>\d+(?:\.\d+)*)\.el[67]uek",
        (3, 8, 13),
        (118, 6, 1),
        "OVMSA-2016-0046 (kernel-uek 3.8.13-118.6.1)",
    ),
    Distro(
        "Oracle UEK R2",
        r"^(?P<base>2\.6\.39)-(?P<build>\d+(?:\.\d+)*)\.el[56]uek",
        (2, 6, 39),
        (400, 279, 1),
        "OVMSA-2016-0060 (kernel-uek 2.6.39-400.279.1)",
    ),
    Distro(
        "Photon OS 1.0",
        r"^(?P<base>4\.2\.0)-(?P<build>\d+)\.ph1",
        (4, 2, 0),
        (15,),
        "Photon OS 1.0 kernel 4.2.0-15 (linux package changelog: veth checksum fix)",
    ),
)
# A plain kernel.org release: x.y or x.y.z, optionally -rcN, with nothing a distribution adds.
VANILLA = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-rc\d+)?$")


def parse(release: str) -> Tuple[int, int, int]:
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not m:
        raise ValueError(f"{release!r} is not a kernel release (like 6.1.0-18-amd64)")
    return int(m[1]), int(m[2]), int(m[3] or 0)


def classify(release: str) -> dict:
    """{"status": fixed|unfixed|unknown, "source": where that comes from, "reason": in words}."""
    version = parse(release)
    if version[:2] >= FIRST_MAINLINE:
        return {"status": "fixed", "source": MAINLINE_SOURCE, "reason": f"{release} is 4.4 or later"}
    for distro in DISTROS:
        judged = distro.judge(release)
        if judged:
            return {"status": judged[0], "source": distro.source, "reason": judged[1]}
    if not VANILLA.match(release):
        return {
            "status": "unknown",
            "source": "",
            "reason": f"{release} is a distribution kernel older than 4.4 that the table does not know: "
            "the distribution may carry the fix under its own numbering (the active probe tells)",
        }
    fixed = STABLE_FIXED.get(version[:2])
    if fixed is None:
        return {
            "status": "unknown",
            "source": "",
            "reason": f"no backport is known in the {version[0]}.{version[1]} stable branch",
        }
    first = ".".join(map(str, fixed))
    status = "fixed" if version >= fixed else "unfixed"
    return {
        "status": status,
        "source": STABLE_SOURCE.format(first),
        "reason": f"{release} {'>=' if status == 'fixed' else '<'} {first}, the branch's first release with the fix",
    }


def has_fix(release: str) -> bool:
    """For the experiment: only a release known to be fixed counts as fixed (unknown is not)."""
    return classify(release)["status"] == "fixed"


# -- the second hazard: NAT "updating" a VXLAN packet's zero outer UDP checksum (2020) --------------
#
# ea64d8d6c675 "netfilter: nat: never update the UDP checksum when it's 0" (Guillaume Nault):
# posted to netdev/netfilter-devel on 2020-04-21 (Message-ID
# <335a95d93767f2b58ad89975e4a0b342ee00db91.1587429321.git.gnault@redhat.com>), sent on in the
# netfilter pull for net on 2020-04-29 (<20200429214811.19941-2-pablo@netfilter.org>) and
# merged for 5.7. One line in udp_manip_pkt() (net/netfilter/nf_nat_proto.c;
# nf_nat_proto_udp.c on 4.14/4.19): `!!hdr->check` instead of `hdr->check ||
# skb->ip_summed == CHECKSUM_PARTIAL`. Stable backports, the first release of each branch:
# the stable review series "[PATCH 5.6 107/118]", "[PATCH 5.4 81/90]", "[PATCH 4.19 44/48]"
# (2020-05-13) and "[PATCH 4.14 034/114]" (2020-05-18), each "commit ea64d8d6c675 upstream".
# No backport is known for 4.9 or 4.4: those, and every distribution kernel, are `unknown`
# (CentOS/RHEL 8 and Ubuntu carry it under their own numbering: the active probe decides).
NAT_ZERO_CSUM_MAINLINE = (5, 7)
NAT_ZERO_CSUM_MAINLINE_SOURCE = (
    "mainline: v5.7 (commit ea64d8d6c675, netfilter pull <20200429214811.19941-2-pablo@netfilter.org>)"
)
NAT_ZERO_CSUM_STABLE = {
    (5, 6): (5, 6, 13),
    (5, 4): (5, 4, 41),
    (4, 19): (4, 19, 123),
    (4, 14): (4, 14, 181),
}
NAT_ZERO_CSUM_STABLE_SOURCE = "stable review series for {}: commit ea64d8d6c675 upstream"


def classify_nat_zero_csum(release: str) -> dict:
    """Whether NAT leaves a zero outer UDP checksum alone: {"status", "source", "reason"} as classify() says it.

    Only the zero-checksum variant of the VXLAN hazard depends on it: a device
    whose outer checksum is on is broken through NAT on every kernel measured
    (6.18; see badsum/host/fleet/vxlan.py), and no kernel fix is known for it.
    """
    version = parse(release)
    if version[:2] >= NAT_ZERO_CSUM_MAINLINE:
        return {
            "status": "fixed",
            "source": NAT_ZERO_CSUM_MAINLINE_SOURCE,
            "reason": f"{release} is 5.7 or later",
        }
    if not VANILLA.match(release):
        return {
            "status": "unknown",
            "source": "",
            "reason": f"{release} is a distribution kernel older than 5.7: it may carry ea64d8d6c675 under its own "
            "numbering (the active probe tells)",
        }
    fixed = NAT_ZERO_CSUM_STABLE.get(version[:2])
    branch = f"{version[0]}.{version[1]}"
    if fixed is None and version[:2] < (4, 14):
        return {
            "status": "unknown",
            "source": "",
            "reason": f"no backport of ea64d8d6c675 is known in the {branch} stable branch (the active probe tells)",
        }
    if fixed is None:
        return {
            "status": "unfixed",
            "source": f"ea64d8d6c675 (April 2020) came after the {branch} stable branch's last release",
            "reason": f"the {branch} branch ended before ea64d8d6c675",
        }
    first = ".".join(map(str, fixed))
    status = "fixed" if version >= fixed else "unfixed"
    return {
        "status": status,
        "source": NAT_ZERO_CSUM_STABLE_SOURCE.format(first),
        "reason": f"{release} {'>=' if status == 'fixed' else '<'} {first}, the branch's first release with the fix",
    }


def has_nat_fix(release: str) -> bool:
    """For the experiment's vxlan-nat condition: only a release known to have ea64d8d6c675 counts (unknown is not)."""
    return classify_nat_zero_csum(release)["status"] == "fixed"
