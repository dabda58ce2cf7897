"""The vxlan-nat topology's plan, from the pair's pod CIDR alone: both ends agree, lab addresses only."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest

from badsum.host.experiment.topology import vxlan_nat
from badsum.host.shared.common import HostError

LAB = ipaddress.ip_network("198.18.0.0/15")


def options(**over) -> SimpleNamespace:
    base = {"address": "198.19.0.12", "client_address": "198.19.0.11", "pod_cidr": "198.19.128.8/29", "port": 5001}
    return SimpleNamespace(**{**base, **over})


def test_every_address_comes_from_the_pod_cidr_and_stays_in_the_lab_range() -> None:
    p = vxlan_nat.plan(options())
    assert p == {
        "server_subnet": "198.19.128.8/30",
        "server_vtep": "198.19.128.8",
        "gateway": "198.19.128.9",
        "pod": "198.19.128.10",
        "client_subnet": "198.19.128.12/30",
        "client_vtep": "198.19.128.12",
        "service": "198.19.128.14",
    }
    for value in p.values():
        assert ipaddress.ip_network(value).subnet_of(LAB)
    # the two ends' subnets are apart, and the ClusterIP is no pod's
    assert not ipaddress.ip_network(p["server_subnet"]).overlaps(ipaddress.ip_network(p["client_subnet"]))
    assert ipaddress.ip_address(p["service"]) not in ipaddress.ip_network(p["server_subnet"])


@pytest.mark.parametrize(
    ("over", "message"),
    [({"pod_cidr": "198.19.128.8/30"}, "/29 or larger"), ({"address": "fd00::1"}, "IPv4"), ({"pod_cidr": "x"}, "IPv4")],
)
def test_a_plan_that_cannot_hold_both_ends_is_refused(over: dict, message: str) -> None:
    with pytest.raises(HostError, match=message):
        vxlan_nat.plan(options(**over))


def test_each_end_can_name_the_others_vtep_mac() -> None:
    assert vxlan_nat.vtep_mac("198.19.0.12") == "02:b5:c6:13:00:0c"  # locally administered, from the address
    assert vxlan_nat.vtep_mac("198.19.0.11") != vxlan_nat.vtep_mac("198.19.0.12")


def test_the_masquerade_is_kube_proxys_shape_but_only_for_the_labs_traffic() -> None:
    o = options()
    rules = [" ".join(r) for r in vxlan_nat.kube_proxy_rules(vxlan_nat.plan(o), o)]
    masq = [r for r in rules if "MASQUERADE" in r]
    # kube-proxy before kubernetes#92035: marked packets masqueraded with --random-fully, the mark not cleared;
    # the mark's bits badsum's own, not kube-proxy's 0x4000 (the host's own KUBE-POSTROUTING would take them)
    assert all("-m mark --mark 0x3000/0x3000 -j MASQUERADE --random-fully" in r for r in masq)
    assert not any("--xor-mark" in r or "0x4000" in r for r in rules)
    # ... matching only the pod subnet (inner) and host B's VXLAN port (outer), never anything else
    assert sorted(r.split(" -m mark")[0] for r in masq) == [
        "BADSUM-KUBE-POSTROUTING -d 198.19.0.12/32 -p udp --dport 8472",
        "BADSUM-KUBE-POSTROUTING -d 198.19.128.8/30",
    ]
    assert all(r.split()[0].startswith("BADSUM-KUBE-") for r in rules)
    assert "BADSUM-KUBE-SERVICES -d 198.19.128.14/32 -p tcp --dport 5001 -j BADSUM-KUBE-MARK-MASQ" in rules


def test_everything_of_the_cell_is_apart_from_a_hosts_own_overlay() -> None:
    """A canary has an overlay of its own (flannel.1: VNI 1, port 8472; Calico: 4096, 4789) and kube-proxy's mark
    0x4000: the cell's VNI, mark and ctmark are none of them, and its outer flows are counted by their ctmark."""
    from badsum.host.experiment import condition

    assert vxlan_nat.VNI not in (1, 4096) and 0 < vxlan_nat.VNI < 1 << 24
    assert int(vxlan_nat.MARK.split("/")[0], 16) & 0xC000 == 0  # kube-proxy's masquerade and drop bits
    assert condition.CELL_CT_MARK == vxlan_nat.MARK
    o = options()
    rules = [" ".join(r) for r in vxlan_nat.kube_proxy_rules(vxlan_nat.plan(o), o)]
    assert (
        "BADSUM-KUBE-POSTROUTING -d 198.19.0.12/32 -p udp --dport 8472 -m mark --mark 0x3000/0x3000 -j CONNMARK "
        "--set-xmark 0x3000/0x3000" in rules
    )
    # the only rules outside badsum's chains: the two jumps, with badsum's comment
    assert [vxlan_nat.jump(b, c) for b, c in vxlan_nat.JUMPS] == [
        ["OUTPUT", "-m", "comment", "--comment", "badsum vxlan-nat cell", "-j", "BADSUM-KUBE-SERVICES"],
        ["POSTROUTING", "-m", "comment", "--comment", "badsum vxlan-nat cell", "-j", "BADSUM-KUBE-POSTROUTING"],
    ]


def test_the_emulators_configuration_is_the_programs_struct() -> None:
    """struct bs_vx_cfg (vxlannat.bpf.c): 24 bytes - deadline, port, VNI, outer source and destination."""
    from badsum.host.experiment import condition
    from badsum.host.shared import bpf

    source = bpf.source("vxlannat").decode()
    assert "sizeof(struct bs_vx_cfg) == 24" in source and condition.VX_CFG.size == 24
    assert "ST_OTHER" in source and condition.VX_STATS[-1] == "other"


def test_up_refuses_a_pod_cidr_a_route_of_the_hosts_touches(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ip route replace` took over the host's own route to the same prefix; now such a route (or an overlay's
    route covering the prefix: a production pod network) makes up refuse, before anything is made."""
    routes = {
        ("route", "show", "root", "198.19.128.8/30"): [{"dst": "198.19.128.8/30", "dev": "eth1", "gateway": "x"}],
        ("route", "show", "match", "198.19.128.12/30"): [
            {"dst": "default", "dev": "eth0", "gateway": "198.19.0.1"},
            {"dst": "198.19.0.0/16", "dev": "flannel.1", "gateway": "198.19.0.0"},
        ],
        ("-d", "link", "show", "type", "vxlan"): [{"ifname": "flannel.1"}, {"ifname": vxlan_nat.DEVICE}],
    }
    monkeypatch.setattr(vxlan_nat.hn, "ip_json", lambda *args, **kw: routes.get(args, []))
    with pytest.raises(HostError, match=r"already routes 198.19.128.8/30 \(198.19.128.8/30 dev eth1 via x\)"):
        vxlan_nat._check_routes(("198.19.128.8/30", "198.19.128.8", vxlan_nat.DEVICE))
    with pytest.raises(HostError, match=r"198.19.0.0/16 dev flannel.1"):
        vxlan_nat._check_routes(("198.19.128.12/30", "198.19.128.12", vxlan_nat.DEVICE))
    # the cell's own routes (a re-run), and a default route, are not the host's to keep
    routes[("route", "show", "root", "198.19.128.8/30")] = [
        {"dst": "198.19.128.8/30", "dev": vxlan_nat.DEVICE, "gateway": "198.19.128.8"}
    ]
    routes[("route", "show", "match", "198.19.128.12/30")] = [{"dst": "default", "dev": "eth0"}]
    vxlan_nat._check_routes(("198.19.128.8/30", "198.19.128.8", vxlan_nat.DEVICE))
    vxlan_nat._check_routes(("198.19.128.12/30", "198.19.128.12", vxlan_nat.DEVICE))
