"""The VM lab's plan, without booting anything: addresses, guests' configuration, QEMU command lines, inventory."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
import yaml
from test_lab_spec import in_lab_range

from badsum.lab import inventory as embedded_inventory
from badsum.lab.spec import MAX_SLOT, LabError, LabSpec
from badsum.vm import boot, guest, provider, qemu
from badsum.vm import inventory as vm_inventory
from badsum.vm.spec import MAX_VM_SLOT, VmLabSpec

PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
KERNEL = {"variant": "unfixed", "release": "6.1.192-badsum-unfixed", "has_fix": False}


def _addresses(spec: LabSpec) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = {spec.mgmt_v4, spec.data_v4, spec.mgmt_v6, spec.data_v6}
    for n in range(1, spec.hosts + 1):
        c = spec.containers(n)
        nets |= {ipaddress.ip_network(c["badsum_pod_cidr"]), ipaddress.ip_network(c["badsum_docker_ipv6_cidr"])}
        nets.add(ipaddress.ip_network(c["badsum_docker_bip"], strict=False))
    return nets


def test_every_address_is_in_the_lab_ranges_and_never_private() -> None:
    spec = VmLabSpec("vm1", 2, MAX_VM_SLOT)
    for node in spec.nodes():
        for addr in (node.mgmt_v4, node.mgmt_v6, node.data_v4 or node.mgmt_v4, node.data_v6 or node.mgmt_v6):
            in_lab_range(addr)
            assert not any(ipaddress.ip_address(addr) in p for p in PRIVATE)


def test_vm_labs_never_share_a_prefix_with_embedded_labs_or_each_other() -> None:
    def collapsed(nets: set) -> list:
        return [
            *ipaddress.collapse_addresses(n for n in nets if n.version == 4),
            *ipaddress.collapse_addresses(n for n in nets if n.version == 6),
        ]

    vm = [collapsed(_addresses(VmLabSpec("vm1", 16, s))) for s in range(MAX_VM_SLOT + 1)]
    embedded = collapsed(set().union(*(_addresses(LabSpec("lab0", 200, s)) for s in range(MAX_SLOT + 1))))
    for i, nets in enumerate(vm):
        others = embedded + [o for j, v in enumerate(vm) if j != i for o in v]
        for net in nets:
            assert not any(net.version == o.version and net.overlaps(o) for o in others), net


def test_vm_lab_ids_and_sizes_are_checked() -> None:
    with pytest.raises(LabError, match="starts with 'vm'"):
        VmLabSpec("lab0", 2, 0)
    with pytest.raises(LabError, match="even"):
        VmLabSpec("vm1", 3, 0)


def test_macs_are_unique_and_locally_administered() -> None:
    spec = VmLabSpec("vm1", 4, 7)
    macs = [spec.mac(i, nic) for i in range(5) for nic in range(5)]
    assert len(set(macs)) == len(macs)
    assert all(int(m.split(":")[0], 16) & 0b11 == 0b10 for m in macs)


def test_guest_env_names_nics_by_mac_and_gives_the_switch_its_ports() -> None:
    spec = VmLabSpec("vm1", 2, 0)
    h2 = provider._guest_env(spec, spec.host(2))
    assert h2["BADSUM_LINKS"] == f"mgmt0={spec.mac(2, 0)} eth0={spec.mac(2, 1)}"
    assert h2["BADSUM_DATA_V4"] == "198.19.64.12/24"
    sw = provider._guest_env(spec, spec.switch)
    assert sw["BADSUM_SWITCH_PORTS"] == "p1 p2"
    assert sw["BADSUM_DATA_V4"] == ""


def test_env_file_quotes_every_value(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text(guest.env_file({"A": "x y", "B": "it's; $(false)"}))
    out = subprocess.run(["sh", "-c", f'. {env}; printf "%s|%s" "$A" "$B"'], capture_output=True, text=True)
    assert out.stdout == "x y|it's; $(false)"


def test_boot_scripts_are_valid_sh() -> None:
    for script in (guest.MOUNTS, guest.BOOT):
        assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0


def test_systemd_guests_boot_the_script_as_a_unit_and_never_the_system_dockerd() -> None:
    links = guest.links()
    files = guest.files()
    assert links[guest.INIT] == "/bin/busybox"
    assert links["/etc/systemd/system/sysinit.target.wants/badsum-boot.service"] in files
    assert "ExecStart=/usr/local/sbin/badsum-boot\n" in files["/etc/systemd/system/badsum-boot.service"][0]
    # docker.io enables a dockerd on 172.17.0.0/16, containerd with it: never in a lab.
    for unit in ("docker.service", "docker.socket", "containerd.service", "apt-daily.timer"):
        assert links[f"/etc/systemd/system/{unit}"] == "/dev/null"
    # busybox init runs the mounts systemd would have made, then the same boot script.
    assert guest.INITTAB.index("badsum-mounts") < guest.INITTAB.index("badsum-boot")


def test_qemu_command_line(tmp_path: Path) -> None:
    spec = VmLabSpec("vm1", 2, 0)
    m = provider._machine(spec, spec.switch, tmp_path / "bzImage", tmp_path / "rootfs.img", "busybox")
    cmd = " ".join(qemu.argv(m, "tcg"))
    assert "accel=tcg" in cmd and "-cpu max" in cmd
    assert "snapshot=on" in cmd  # the shared image is never written
    assert "user" not in {a.split(",")[0] for a in qemu.argv(m, "tcg")}  # no slirp and its 10.0.2.0/24
    assert cmd.count("dgram,") == 2 and cmd.count("tap,ifname=vm1-msw") == 1
    assert f"remote.path={spec.link_socket('h2')}" in cmd
    assert f"init={guest.INIT}" in cmd and "net.ifnames" not in cmd
    # A guest may reboot (and stays on its overlay); a panic halts it, for the provider to see.
    assert "-no-reboot" not in cmd and "panic=0" in cmd
    assert all(f"name={guest.FW_CFG_PREFIX}/{item}," in cmd for item in guest.FW_CFG_ITEMS)
    kvm = " ".join(qemu.argv(m, "kvm"))
    assert "accel=kvm" in kvm and "-cpu host" in kvm
    systemd = " ".join(qemu.argv(provider._machine(spec, spec.host(1), m.kernel, m.rootfs, "systemd"), "tcg"))
    assert "init=/lib/systemd/systemd" in systemd and "net.ifnames=0" in systemd and guest.INIT not in systemd


def test_a_panic_while_booting_is_told_from_the_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider.paths, "STATE_ROOT", tmp_path)
    spec = VmLabSpec("vm1", 2, 0)
    console = spec.state_dir / "host1" / "console.log"
    assert not boot.panicked(spec, spec.host(1))  # no console yet
    console.parent.mkdir(parents=True)
    console.write_text("badsum-boot: up as host1\n")
    assert not boot.panicked(spec, spec.host(1))
    console.write_text("Kernel panic - not syncing: No working init found.\n")
    assert boot.panicked(spec, spec.host(1))


def test_accelerator_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BADSUM_VM_ACCEL", "tcg")
    assert qemu.accelerator() == "tcg"
    monkeypatch.setenv("BADSUM_VM_ACCEL", "xen")
    with pytest.raises(LabError, match="kvm, tcg"):
        qemu.accelerator()


def test_inventory_has_the_embedded_shape_and_says_what_the_kernel_is(tmp_path: Path) -> None:
    spec = VmLabSpec("vm1", 2, 0)
    vm = vm_inventory.inventory_data(spec, tmp_path, KERNEL, "tcg", "systemd")
    emb = embedded_inventory.inventory_data(LabSpec("lab0", 2, 0), tmp_path)
    assert vm["all"]["children"].keys() == emb["all"]["children"].keys()
    for group in ("clients", "servers", "switches", "lab_hosts"):
        assert vm["all"]["children"][group] == emb["all"]["children"][group]
    vm_hosts, emb_hosts = vm["all"]["children"]["badsum_lab"]["hosts"], emb["all"]["children"]["badsum_lab"]["hosts"]
    assert {h: sorted(v) for h, v in vm_hosts.items()} == {h: sorted(v) for h, v in emb_hosts.items()}
    assert vm_hosts["host2"]["badsum_experiment_corruption_iface"] == "p2"
    lab_vars = vm["all"]["children"]["badsum_lab"]["vars"]
    assert lab_vars["badsum_experiment_corruptor"] == "switch"
    assert "badsum_lib_dir" not in lab_vars
    top = vm["all"]["vars"]
    assert top["badsum_embedded_lab"] is False
    assert top["badsum_common_install_packages"] is False
    assert top["badsum_experiment_kernel_fixed"] == "no"
    assert top["badsum_vm_lab"]["init"] == "systemd"
    fixed = vm_inventory.inventory_data(
        spec, tmp_path, {**KERNEL, "variant": "fixed", "has_fix": True}, "tcg", "busybox"
    )
    assert fixed["all"]["vars"]["badsum_experiment_kernel_fixed"] == "yes"
    yaml.safe_dump(vm)  # plain data only


def test_down_of_a_lab_that_is_not_there_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider.paths, "STATE_ROOT", tmp_path)
    monkeypatch.setattr(provider.cgroups, "leftovers", lambda lab_id: [])
    monkeypatch.setattr(provider.network, "lab_links", lambda spec: [])
    assert provider.down("vmnone") == "lab vmnone was not up"
    assert provider.status("vmnone") == []
