from __future__ import annotations

import ipaddress

import pytest

from badsum.lab.spec import LAB_V4, LAB_V6, LabError, LabSpec, validate_lab_id


def in_lab_range(address: str) -> None:
    """The property every address a lab derives must have: inside 198.18.0.0/15 or fd00::/8, nothing else."""
    ip = ipaddress.ip_address(address.split("/")[0])
    if ip not in (LAB_V4 if ip.version == 4 else LAB_V6):
        raise LabError(f"address {address} is outside the embedded lab's ranges")


def test_names_and_addresses_follow_from_id_and_slot() -> None:
    spec = LabSpec("lab0", hosts=2, slot=3)
    h2 = spec.host(2)
    assert (h2.name, h2.netns, h2.mgmt_v4, h2.data_v4) == ("host2", "lab0-h2", "198.18.3.12", "198.19.3.12")
    assert h2.data_v6.startswith("fd00:")
    assert spec.switch.netns == "lab0-sw"
    assert [n.name for n in spec.nodes()] == ["switch", "host1", "host2"]


def test_every_address_is_inside_the_lab_ranges() -> None:
    spec = LabSpec("big", hosts=200, slot=31)
    for node in spec.nodes():
        for addr in (node.mgmt_v4, node.mgmt_v6, node.data_v4 or node.mgmt_v4, node.data_v6 or node.mgmt_v6):
            in_lab_range(addr)


def test_interface_names_fit_the_kernel_limit() -> None:
    spec = LabSpec("abcdef", hosts=200, slot=0)
    assert len(spec.bridge) <= 15
    assert all(len(n.mgmt_link) <= 15 for n in spec.nodes())


@pytest.mark.parametrize("bad", ["", "Lab", "1lab", "toolongid", "a-b", "lab 0"])
def test_bad_lab_ids_are_refused(bad: str) -> None:
    with pytest.raises(LabError, match="lab id"):
        validate_lab_id(bad)


@pytest.mark.parametrize(("hosts", "slot"), [(0, 0), (201, 0), (2, 32), (2, -1)])
def test_bad_sizes_are_refused(hosts: int, slot: int) -> None:
    with pytest.raises(LabError):
        LabSpec("lab0", hosts, slot)


@pytest.mark.parametrize("addr", ["10.0.0.1", "172.17.0.1", "192.168.1.1", "8.8.8.8", "2001:db8::1"])
def test_addresses_outside_the_lab_are_refused(addr: str) -> None:
    with pytest.raises(LabError, match="outside the embedded lab"):
        in_lab_range(addr)


def test_container_prefixes_are_distinct_per_pair_and_inside_the_lab() -> None:
    seen: dict[str, tuple[int, int]] = {}
    for slot in (0, 31):
        spec = LabSpec("lab0", hosts=200, slot=slot)
        for n in range(2, 201, 2):  # the servers: one per pair
            for key, value in spec.containers(n).items():
                in_lab_range(value)
                assert value not in seen, f"{key} {value} of host {n} slot {slot} also {seen[value]}"
                seen[value] = (slot, n)


def test_a_pair_shares_its_ipv4_container_prefixes() -> None:
    spec = LabSpec("lab0", hosts=4, slot=0)
    a, b = spec.containers(1), spec.containers(2)
    assert a["badsum_pod_cidr"] == b["badsum_pod_cidr"] != spec.containers(4)["badsum_pod_cidr"]
    assert a["badsum_docker_ipv6_cidr"] != b["badsum_docker_ipv6_cidr"]
