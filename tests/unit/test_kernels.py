from __future__ import annotations

import pytest

from badsum.host.shared.kernels import classify, classify_nat_zero_csum, has_fix, parse


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


@pytest.mark.parametrize(
    ("release", "status", "source"),
    [
        # mainline and the stable backports, with and without distribution suffixes past 4.4
        ("4.4.0", "fixed", "mainline"),
        ("4.9.0-8-amd64", "fixed", "mainline"),
        ("5.14.0-362.el9.x86_64", "fixed", "mainline"),
        ("3.14.60", "fixed", "stable-queue"),
        ("3.14.59", "unfixed", "stable-queue"),
        ("4.3.5", "fixed", "stable-queue"),
        ("3.10.95", "unfixed", "stable-queue"),
        # distributions the table knows
        ("3.0.101-77-default", "fixed", "SUSE-SU-2016:1672-1"),
        ("3.0.101-71-xen", "unfixed", "SUSE-SU-2016:1672-1"),
        ("3.0.101-0.47.86-default", "fixed", "SUSE-SU-2016:2245-1"),
        ("3.0.101-0.47.71-default", "unfixed", "SUSE-SU-2016:2245-1"),
        ("3.8.13-118.6.1.el6uek.x86_64", "fixed", "OVMSA-2016-0046"),
        ("3.8.13-98.7.1.el7uek.x86_64", "unfixed", "OVMSA-2016-0046"),
        ("2.6.39-400.279.1.el5uek", "fixed", "OVMSA-2016-0060"),
        ("2.6.39-400.264.1.el6uek.x86_64", "unfixed", "OVMSA-2016-0060"),
        ("4.2.0-15.ph1", "fixed", "Photon"),
        ("4.2.0-14.ph1-esx", "unfixed", "Photon"),
        # distributions it does not: only the probe can tell
        ("3.10.0-327.el7.x86_64", "unknown", ""),
        ("3.13.0-79-generic", "unknown", ""),
        ("3.16.0-4-amd64", "unknown", ""),
        ("4.1.17+deb8u1", "unknown", ""),
        ("3.12.49-11-default", "unknown", ""),
        ("4.2.0-15", "unknown", ""),
        # a plain release of a branch without a known backport
        ("4.2.8", "unknown", ""),
        ("3.18.27", "unknown", ""),
    ],
)
def test_the_release_table_names_its_source(release: str, status: str, source: str) -> None:
    found = classify(release)
    assert found["status"] == status, found
    assert source in found["source"]
    assert found["reason"]


def test_only_a_known_fix_counts_as_fixed_for_the_experiment() -> None:
    assert has_fix("3.10.0-327.el7.x86_64") is False  # unknown is not fixed
    assert has_fix("3.0.101-77-default") is True


@pytest.mark.parametrize(
    ("release", "fixed"),
    [
        ("5.7.0", True),
        ("6.18.44-fc-v1300", True),  # this machine's: 5.7 or later, whatever its suffix
        ("5.6.13", True),
        ("5.6.12", False),
        ("5.4.41", True),
        ("5.4.40", False),
        ("4.19.123", True),
        ("4.19.122", False),
        ("4.14.181", True),
        ("4.14.180", False),
        ("4.9.300", False),  # no backport known
        ("5.4.0-42-generic", False),  # a distribution's numbering: unknown, not fixed
    ],
)
def test_the_experiments_vxlan_nat_condition_judges_the_fix_by_the_fleets_table(release: str, fixed: bool) -> None:
    """One place for "has ea64d8d6c675": the vxlan-nat condition (real or emulated) asks the release table the
    fleet's audit uses, stable backports included. ("5.7 or later" alone took 5.4.41 for unfixed: its vulnerable
    cell ran as "real" without the emulator and came out clean, proving nothing.)"""
    from badsum.host.experiment import condition

    assert condition.nat_fix(release) is fixed
    assert condition.nat_fix(release) is (classify_nat_zero_csum(release)["status"] == "fixed")
