"""VM labs: QEMU guests booting the lab kernels, the bug for real and its fix for real.

Each kernel gets a lab of its own (vmtu: unfixed, vmtf: fixed), one after the
other: host1, host2 and a switch as guests, reproduce.yml run against the
inventory `badsum lab up --provider qemu` wrote, unchanged.

    unfixed  vulnerable: the kernel itself (real)    mesos corrupt, bare clean; vxlan-nat valid
                                                     data dropped (its own NAT wrote 0xffff)
             workaround: rx off on the container veth, tx-checksum-ip-generic off on
                         host A's vxlan device         clean
    fixed    patched: the kernel itself (real)       clean
             vulnerable: the eBPF emulations           mesos corrupt, vxlan-nat dropped, as on
                                                       the real kernel

The unfixed kernel lacks both incidents' fixes (kernel/veth-unfixed.patch,
kernel/nat-zero-udp-csum-revert.patch): a kernel built without the NAT revert,
or a vxlan-nat topology whose device lost `noudpcsum`, fails the vxlan-nat
cells' evidence checks.

Runs only where `make kernels` has built both kernels and the root
filesystem (13-19 min once on 2 cores); under TCG a lab boots in about 20 s and
each run takes a few minutes. The unfixed lab also runs bare and mesos with
the netem backend, which this machine's own kernel lacks.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import vmlab
from badsum.vm import kernel
from conftest import ENV, ROOT, VENV_BIN, badsum, cells
from vmlab import MARKS

pytestmark = MARKS

LABS = {"unfixed": "vmtu", "fixed": "vmtf"}
# What each kernel is asked, and what it must answer: (topology, condition) -> (verdict, kind).
EXPECTED = {
    "unfixed": {
        ("bare", "vulnerable"): ("clean", "real"),
        ("mesos", "vulnerable"): ("corrupt-delivered", "real"),
        ("bare", "workaround"): ("clean", "real"),
        ("mesos", "workaround"): ("clean", "real"),
        ("vxlan-nat", "vulnerable"): ("valid-dropped", "real"),
        ("vxlan-nat", "workaround"): ("clean", "real"),
    },
    "fixed": {
        ("bare", "patched"): ("clean", "real"),
        ("mesos", "patched"): ("clean", "real"),
        ("mesos", "vulnerable"): ("corrupt-delivered", "emulated"),
        ("vxlan-nat", "patched"): ("clean", "real"),
        ("vxlan-nat", "vulnerable"): ("valid-dropped", "emulated"),
    },
}
RUN_TIMEOUT = 1800


@pytest.fixture(scope="module", params=list(LABS))
def vm_lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    variant = request.param
    yield from vmlab.vm_lab(LABS[variant], variant, tmp_path_factory.mktemp(f"vm-inventory-{variant}"))


def ssh(info: dict, host: str, *command: str) -> str:
    return vmlab.ssh(info, host, *command).stdout


def test_every_guest_runs_the_lab_kernel(vm_lab: dict) -> None:
    release = kernel.record(vm_lab["variant"])["release"]
    assert release.endswith(f"-badsum-{vm_lab['variant']}")
    for host in ("host1", "host2", "switch"):
        assert ssh(vm_lab, host, "uname", "-r").strip() == release
    assert "(qemu): healthy" in badsum("lab", "status", "--lab", vm_lab["lab"]).stdout


def test_data_nics_never_mark_packets_verified(vm_lab: dict) -> None:
    """No VIRTIO_NET_F_GUEST_CSUM (feature bit 1) on a data NIC: the device never says a checksum was
    checked, like a physical NIC without RX checksum offload; only container veths can mark packets."""
    for host, nics in (("host1", ["eth0"]), ("host2", ["eth0"]), ("switch", ["p1", "p2"])):
        for nic in nics:
            features = ssh(vm_lab, host, "cat", f"/sys/class/net/{nic}/device/features").strip()
            assert features[1] == "0", (host, nic, features)


def test_the_fleet_probe_tells_the_kernels_apart(vm_lab: dict) -> None:
    """The audit's active probe, on the guest's own kernel: no emulator, a real answer."""
    module_args = json.dumps({"tool": "probe", "action": "run", "ephemeral": True})
    proc = subprocess.run(
        [str(VENV_BIN / "ansible"), "-i", str(vm_lab["inventory"]), "host2", "-m", "badsum.kit.run", "-a", module_args],
        cwd=ROOT,
        env=dict(ENV, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["host2"]
    assert result["kind"] == "real", result
    assert result["verdict"] == ("vulnerable" if vm_lab["variant"] == "unfixed" else "fixed"), result
    assert result["datagrams"]["bad_rx_on"]["delivered"] is (vm_lab["variant"] == "unfixed")


def test_the_kit_reproduces_the_kernels_answer(vm_lab: dict, tmp_path: Path) -> None:
    expected = EXPECTED[vm_lab["variant"]]
    extra = {
        "badsum_experiment_topologies": sorted({t for t, _ in expected}),
        "badsum_experiment_conditions": sorted({c for _, c in expected}),
        "badsum_experiment_results_dir": str(tmp_path),
    }
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(vm_lab["inventory"]), "reproduce.yml", "-e", json.dumps(extra)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    found = cells(tmp_path)
    got = {key: (found[key]["verdict"], found[key]["condition_kind"]) for key in found if key in expected}
    assert got == expected, proc.stdout[-4000:]
    assert all(found[key]["kernel"].endswith(f"-badsum-{vm_lab['variant']}") for key in expected)
    for (topology, _condition), (verdict, kind) in expected.items():
        if topology == "vxlan-nat":
            assert_vxlan_evidence(found[(topology, _condition)], verdict, kind)


def assert_vxlan_evidence(cell: dict, verdict: str, kind: str) -> None:
    """What host B counted and captured, and what host A's NAT and emulator did, not the verdict alone."""
    overlay, emulator = cell["overlay"], cell["emulator"]
    why = json.dumps({"overlay": overlay, "emulator": emulator, "reason": cell["verdict_reason"]})[:3000]
    errors = cell["csum_errors"]["host"]["UdpInCsumErrors"]
    # the hazard was exercised: host A's MASQUERADE --random-fully rewrote an outer flow
    assert overlay["natted_flows"] >= 1, why
    # the 2020 device: every outer packet left host A with checksum 0 but those NAT "updated"
    assert overlay["no_cksum_outer"] == overlay["outer_packets"] - overlay["bad_outer"] > 0, why
    assert emulator["emulator_attached"] is (kind == "emulated"), why
    if verdict == "valid-dropped":
        # host B dropped exactly the outer packets its capture saw with a bad checksum, and the
        # unfixed udp_manip_pkt() (the kernel's own, or the emulator's copy) wrote 0xffff for a
        # port-only SNAT of a zero checksum
        assert errors == overlay["bad_outer"] >= 1, why
        assert overlay["written"] == {"0xffff": errors}, why
        assert "bad udp cksum 0xffff" in overlay["samples"][0], why
        assert cell["messages"]["intact"] == cell["messages"]["sent"], why
        if kind == "emulated":
            assert emulator["counts"]["rewritten"] == errors, why
    else:
        assert errors == overlay["bad_outer"] == 0 and overlay["written"] == {}, why


def test_netem_gives_the_ebpf_injectors_verdicts(vm_lab: dict, tmp_path: Path) -> None:
    """The other backend, where it exists: netem on the switch, a forwarding hop, counted by a capture."""
    if vm_lab["variant"] != "unfixed":
        pytest.skip("the kernel without the fix is where the topologies' verdicts differ")
    extra = {
        "badsum_experiment_topologies": ["bare", "mesos"],
        "badsum_experiment_conditions": ["vulnerable"],
        "badsum_experiment_backend": "netem",
        "badsum_experiment_results_dir": str(tmp_path),
    }
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(vm_lab["inventory"]), "reproduce.yml", "-e", json.dumps(extra)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    found = cells(tmp_path)
    got = {key: (found[key]["verdict"], found[key]["condition_kind"]) for key in found}
    want = {k: v for k, v in EXPECTED["unfixed"].items() if k[1] == "vulnerable" and k[0] in ("bare", "mesos")}
    assert got == want, proc.stdout[-4000:]
    for cell in found.values():
        assert cell["corruption"]["backend"] == "netem"
        # netem keeps no count: host B's capture is it, and the window met the traffic
        assert cell["corrupted_packets"] >= cell["min_corrupted"], cell["verdict_reason"]


def test_down_leaves_nothing_behind(vm_lab: dict) -> None:
    vmlab.assert_down_leaves_nothing(vm_lab)
    assert "was not up" in badsum("lab", "down", "--lab", vm_lab["lab"]).stdout
