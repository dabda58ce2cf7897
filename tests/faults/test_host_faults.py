"""The fault catalogue, host side: what a tenant or a fault can do to the guard, the audit, remediation and rollback.

One emulated host of a lab of its own (icat), reached over SSH as a fleet
host is, the host kit installed on it. Each case sets a fault up there, runs
the kit as the fleet playbooks do, and checks the guarantee the README's
fleet section makes; it is named for what it breaks. Every case failed on
the kit before issue 20 (the finding it proves is in its docstring). The
CNI plugin's cases are in test_cni_plugin.py beside this one.

BADSUM_KIT=FILE runs the cases against another kit (`badsum hostkit FILE` in an
earlier checkout): the ones it fails are the findings it has.

Cases leave the host as they found it (`clean`): tenant namespaces (named
cat-*) removed, the guard stopped, badsum's record and CNI entries gone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator

import pytest

from hostlab import Host, badsum

LAB = "icat"
# What the fleet role passes on every call (the host kit has no defaults of its own for them).
CNI = ["--cni-conf-dir", "/run/cat/net.d", "--cni-bin-dir", "/run/cat/bin"]
NO_TEXTFILE = ["--textfile-dir", ""]
AUDIT = ["audit", "show", "--no-probe", *CNI, *NO_TEXTFILE]
APPLY = ["remediate", "apply", "--guard", "daemon", "--interval", "60", "--vxlan", "exposed", *CNI]
ROLLOUT = ["remediate", "rollout", "--interval", "60", "--vxlan", "exposed", "--wait", "2", *CNI, *NO_TEXTFILE]
ROLLBACK = ["remediate", "rollback", *CNI, *NO_TEXTFILE]
CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "pods",
    "plugins": [{"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "198.19.200.0/24"}}],
}

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="root only: it builds a lab")]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    inventory = tmp_path_factory.mktemp("icat-inventory")
    badsum("lab", "down", "--lab", LAB)
    badsum("lab", "up", "--lab", LAB, "--hosts", "2", "--write-inventory", str(inventory))
    h = Host(inventory, "host1")
    h.install_kit()
    yield h
    badsum("lab", "down", "--lab", LAB)


@pytest.fixture
def clean(host: Host) -> Iterator[Host]:
    yield host
    host.kit(*ROLLBACK)
    host.sh(
        "for ns in $(ip netns list | awk '{print $1}' | grep '^cat-'); do ip netns del $ns; done; "
        f"rm -rf /run/cat; chown -R root:root {host.lib_dir}; chmod -R go-w {host.lib_dir}; "
        "{ ip link del flannel.1; ip link del catvx0; ip link del $'vx\\xff'; "
        f"iptables -t nat -D {KUBE_MASQUERADE}; }} 2>/dev/null",  # their messages name the device in bytes
        check=False,
    )


# kube-proxy's rule before kubernetes#92035: the service packet's mark survives into the outer VXLAN packet.
KUBE_MASQUERADE = "POSTROUTING -m mark --mark 0x4000/0x4000 -m comment --comment cat-vxlan -j MASQUERADE --random-fully"


def overlay(host: Host, name: str = "flannel.1", knob: str = "on") -> None:
    """A vxlan device as flannel makes it (outer checksum as the kernel defaults), and the rule that exposes it.

    `name` is a bash word ($'\\xff' for bytes). The device is never up: nothing is sent.
    """
    host.sh(
        f"ip link add {name} type vxlan id {1 if name == 'flannel.1' else 2} dstport 8472 local 198.18.200.1 "
        "nolearning && "
        f"ethtool -K {name} tx-checksum-ip-generic {knob} && "
        f"{{ iptables -t nat -C {KUBE_MASQUERADE} 2>/dev/null || iptables -t nat -A {KUBE_MASQUERADE}; }}"
    )


def knob(host: Host, name: str = "flannel.1") -> str:
    return host.sh(f"ethtool -k {name} | sed -n 's/^[[:space:]]*tx-checksum-ip-generic: //p'").stdout.split()[0]


def tenant_namespace(host: Host, name: str, ifname: str = "eth0", peer: str = "") -> None:
    """A container as a runtime makes it: a namespace of its own, a veth whose host end stays on the host.

    `ifname` is a bash word ($'\\xff' for bytes).
    """
    host.sh(f"ip netns add {name} && ip link add {peer or name[:12]}h type veth peer name {ifname} netns {name}")


def record(host: Host) -> dict:
    return host.ok("remediate", "show")


def guards(host: Host) -> str:
    """The PIDs of guard daemons of this host (its state directory is in their command line)."""
    pattern = f"[{host.lib_dir.as_posix()[0]}]{host.lib_dir.as_posix()[1:]}/remediation/.*guard run"
    return host.sh(f"pgrep -f '{pattern}'", check=False).stdout.strip()


# -- the cases ------------------------------------------------------------------------


def guard_sweep_from_a_scratch_namespace_turns_the_host_veths_off(host: Host) -> None:
    """`guard sweep` run inside `unshare --net` took every namespace for a container's: refused now, nothing changed."""
    tenant_namespace(host, "cat-a")
    before = host.sh("ethtool -k mgmt0 | grep rx-checksumming").stdout
    code, answer = host.kit("guard", "sweep", prefix="unshare --net")
    assert code == 2 and "acts only from the host's own" in answer["msg"], answer
    assert host.sh("ethtool -k mgmt0 | grep rx-checksumming").stdout == before
    assert host.rx("cat-a", "eth0") == "on"  # the container veth too: nothing was done at all


def audit_from_ip_netns_exec_misjudges_the_host(host: Host) -> None:
    """The audit from inside another namespace called the host's veths containers': refused, with the reason."""
    tenant_namespace(host, "cat-a")
    code, answer = host.kit(*AUDIT, prefix="ip netns exec cat-a")
    assert code == 2 and "acts only from the host's own" in answer["msg"]


def a_non_utf8_interface_name_stops_the_audit(host: Host) -> None:
    """`ip link add $'\\xff' ...` in a tenant's namespace: the audit died with UnicodeDecodeError."""
    tenant_namespace(host, "cat-a", ifname="$'\\xff'")
    answer = host.ok(*AUDIT)
    assert {(v["ifname"], v["role"], v["rx"]) for v in answer["veths"] if v["owner"].startswith("netns cat-a")} == {
        ("\\xff", "container", "on")
    }


def a_non_utf8_interface_name_stops_the_guard(host: Host) -> None:
    """Every guard pass failed on a name that is not UTF-8: no new container on the host was protected."""
    tenant_namespace(host, "cat-a", ifname="$'\\xff'")
    host.ok(*APPLY)
    tenant_namespace(host, "cat-b", ifname="$'\\xfe\\x1b'")
    time.sleep(1)
    assert host.sh("ip netns exec cat-b ethtool -k $'\\xfe\\x1b' | grep rx-checksumming").stdout.split()[1] == "off"
    assert host.sh("ip netns exec cat-a ethtool -k $'\\xff' | grep rx-checksumming").stdout.split()[1] == "off"


def terminal_escapes_in_a_name_reach_the_operators_screen(host: Host) -> None:
    """Names and process names are printed in reports and tables: escaped, nothing of them runs in a terminal."""
    tenant_namespace(host, "cat-a", ifname="$'e\\x1b[2J'")
    text = json.dumps(host.ok(*AUDIT))
    assert "\x1b" not in text and "e\\\\x1b[2J" in text


def a_process_with_a_non_utf8_name_stops_the_audit(host: Host) -> None:
    """A container's process may name itself anything (comm): reading it as UTF-8 stopped the audit."""
    host.sh(
        "cp /bin/sleep /run/$'\\xff\\xfe' && "
        "(setsid unshare --net /run/$'\\xff\\xfe' 30 >/dev/null 2>&1 & echo $! > /run/cat-pid)"
    )
    time.sleep(0.3)
    answer = host.ok(*AUDIT)
    assert any(ns["owner"].startswith("process ") and "\\xff\\xfe" in ns["owner"] for ns in answer["namespaces"])
    host.sh("kill $(cat /run/cat-pid); rm -f /run/$'\\xff\\xfe' /run/cat-pid", check=False)


def thousands_of_namespaces_overflow_the_audit(host: Host) -> None:
    """A host with many containers: the audit counts every one and stays bounded in what it returns."""
    host.sh(
        "for i in $(seq 1 1100); do ip netns add cat-n$i; done; "
        "for i in $(seq 1 1100); do ip link add cat$i type veth peer name eth0 netns cat-n$i; done",
        timeout=300,
    )
    answer = host.ok(*AUDIT)
    assert answer["namespaces_total"] >= 1100 and answer["container_veths"] >= 1100
    assert answer["container_veths_rx_on"] >= 1100 and len(answer["veths"]) <= 2000
    assert answer["risk"] == "patched"  # this kernel; the counts are what matter here


def namespaces_vanishing_mid_pass_stop_the_guard(host: Host) -> None:
    """Containers come and go while a pass runs: the guard skips them and keeps protecting the others."""
    host.ok(*APPLY)
    host.sh(
        "for i in $(seq 1 150); do ip netns add cat-v$i; ip link add catv$i type veth peer name eth0 netns cat-v$i; "
        "ip netns del cat-v$i; done; "
        "ip netns add cat-last; ip link add catlast type veth peer name eth0 netns cat-last",
        timeout=120,
    )
    time.sleep(1)
    assert host.rx("cat-last", "eth0") == "off"
    state = record(host)["dir"]
    status = json.loads(host.sh(f"cat {state}/guard.json").stdout)
    assert host.sh(f"grep -c 'pass failed' {state}/guard.log || true").stdout.strip() == "0"
    assert status["passes"] >= 2


def an_event_storm_makes_the_guard_spin(host: Host) -> None:
    """A pass per burst of link events, with no bound: a storm of new links now costs at most 4 passes a second."""
    host.ok(*APPLY)
    state = record(host)["dir"]
    before = json.loads(host.sh(f"cat {state}/guard.json").stdout)["passes"]
    started = time.monotonic()
    host.sh(
        "for i in $(seq 1 400); do ip link add cats$i type veth peer name catp$i; ip link del cats$i; done", timeout=120
    )
    time.sleep(0.6)
    elapsed = time.monotonic() - started
    passes = json.loads(host.sh(f"cat {state}/guard.json").stdout)["passes"] - before
    assert passes <= elapsed / 0.25 + 3, (passes, elapsed)


def a_lib_dir_another_user_owns_runs_code_as_root(host: Host) -> None:
    """badsum_lib_dir was trusted whoever owned it: the root guard ran code from it. Nothing runs now."""
    host.sh(f"chown nobody {host.lib_dir}")
    code, answer = host.kit(*AUDIT)
    assert code == 2 and "cannot be trusted" in answer["msg"] and "uid 65534" in answer["msg"], answer


def a_lib_dir_writable_by_others_runs_code_as_root(host: Host) -> None:
    """A lib dir (or a parent of it) others can write lets them swap the kit or the records."""
    host.sh(f"chmod o+w {host.lib_dir}")
    code, answer = host.kit(*AUDIT)
    assert code == 2 and "writable by others" in answer["msg"], answer


def a_kit_file_writable_by_others_runs_as_root(host: Host) -> None:
    """The kit itself writable by others: refused before a line of it acts."""
    host.sh(f"chmod o+w {host.kit_path}")
    code, answer = host.kit(*AUDIT)
    assert code == 2 and str(host.kit_path) in answer["msg"], answer


def a_forged_lab_mark_makes_any_namespace_a_host(host: Host) -> None:
    """The lab's mark must be root's: one anyone else wrote, naming a scratch namespace, makes it no host."""
    host.write(
        "/run/cat/forge",
        "mount -t tmpfs forged /run/badsum\n"
        "ino=$(stat -L -c %i /proc/self/ns/net)\n"
        'echo "{\\"lab\\": \\"icat\\", \\"node\\": \\"host1\\", \\"netns\\": $ino}" > /run/badsum/emulated-host\n'
        "chown nobody /run/badsum/emulated-host\n"
        'exec "$@"\n',
    )
    code, answer = host.kit("guard", "sweep", prefix="unshare --net --mount sh /run/cat/forge")
    assert code == 2 and "acts only from the host's own" in answer["msg"], answer


def rollback_writes_back_a_week_old_conflist(host: Host) -> None:
    """Rollback restored the bytes it recorded, whatever was there: an edit made after the rollout was lost."""
    host.write("/run/cat/net.d/10-pods.conflist", json.dumps(CONFLIST, indent=2) + "\n")
    host.sh("mkdir -p /run/cat/bin")
    tenant_namespace(host, "cat-a")
    host.ok(*APPLY)
    edited = host.read("/run/cat/net.d/10-pods.conflist").replace('"cni0"', '"cni1"')
    host.write("/run/cat/net.d/10-pods.conflist", edited)
    host.ok(*ROLLBACK)
    after = host.sh("cat /run/cat/net.d/10-pods.conflist").stdout
    assert '"cni1"' in after and "badsum-rx-off" not in after
    assert json.loads(after)["plugins"] == [{**CONFLIST["plugins"][0], "bridge": "cni1"}]


def rollback_brings_back_a_deleted_conflist(host: Host) -> None:
    """A configuration deleted since the rollout came back on rollback: it stays deleted now."""
    host.write("/run/cat/net.d/10-pods.conflist", json.dumps(CONFLIST))
    host.sh("mkdir -p /run/cat/bin")
    host.ok(*APPLY)
    host.sh("rm /run/cat/net.d/10-pods.conflist")
    host.ok(*ROLLBACK)
    assert host.sh("ls -A /run/cat/net.d").stdout.strip() == ""


def rollback_turns_on_a_newer_container_that_got_a_freed_inode(host: Host) -> None:
    """Namespace inodes are reused within a boot: a newer container made the same way (same inode, ifindex and
    name) had its rx turned on by rollback. Only the very veth badsum turned off is turned on now."""
    tenant_namespace(host, "cat-a")
    host.ok(*APPLY)
    host.sh(f"kill $(cat {record(host)['dir']}/guard.pid); sleep 0.3")  # the newer one is not the guard's doing
    first = host.sh("stat -L -c %i /run/netns/cat-a").stdout.strip()
    for _ in range(20):  # the kernel hands the freed inode to the next namespace made
        host.sh("ip netns del cat-a; ip netns add cat-a && ip link add cat-ah type veth peer name eth0 netns cat-a")
        if host.sh("stat -L -c %i /run/netns/cat-a").stdout.strip() == first:
            break
    else:
        pytest.fail("the kernel never reused the inode: this case cannot be made here")
    host.sh("ip netns exec cat-a ethtool -K eth0 rx off")  # the newer container's runtime turned it off itself
    answer = host.ok(*ROLLBACK)
    assert host.rx("cat-a", "eth0") == "off", answer
    assert "eth0" in answer["gone"]


def rollback_undoes_a_change_made_since(host: Host) -> None:
    """A veth whose rx someone turned on again since the rollout is not badsum's to change any more."""
    tenant_namespace(host, "cat-a")
    host.ok(*APPLY)
    state = record(host)["dir"]
    host.sh(f"kill $(cat {state}/guard.pid); sleep 0.3; ip netns exec cat-a ethtool -K eth0 rx on")
    answer = host.ok(*ROLLBACK)
    assert answer["turned_on_since"] == ["eth0"] and not any("cat-a" in c for c in answer["changes"]), answer


def rollback_turns_on_a_veth_the_runtime_had_turned_off(host: Host) -> None:
    """A container veth already at rx off (Mesos does it itself) is not badsum's change: it stays off."""
    tenant_namespace(host, "cat-a")
    host.sh("ip netns exec cat-a ethtool -K eth0 rx off")
    host.ok(*APPLY)
    host.ok(*ROLLBACK)
    assert host.rx("cat-a", "eth0") == "off"


def a_container_exiting_during_rollback_aborts_it(host: Host) -> None:
    """A container that ends while rollback runs was fatal half way: it is counted as gone, the rest is done.

    (The very moment - between rollback's look and its change - is pinned in tests/unit/test_fleet.py.)
    """
    host.sh("(setsid unshare --net sleep 300 >/dev/null 2>&1 & echo $! > /run/cat-pid)")
    tenant_namespace(host, "cat-b")
    time.sleep(0.3)
    pid = host.read("/run/cat-pid").strip()
    host.sh(f"ip link add catq type veth peer name eth1 netns /proc/{pid}/ns/net")
    host.ok(*APPLY)
    # The container ends the moment rollback starts.
    host.sh(
        "(while ! pgrep -f '[b]adsum-host.pyz remediate rollback' >/dev/null; do sleep 0.001; done; "
        f"kill {pid}) >/dev/null 2>&1 &"
    )
    answer = host.ok(*ROLLBACK)
    assert host.rx("cat-b", "eth0") == "on", answer  # the rest was done
    assert "eth1" in answer["gone"], answer


def rollback_without_a_record_leaves_everything_in_place(host: Host) -> None:
    """state.json gone (lib dir wiped): rollback said "nothing to roll back" and left the guard, the plugin and
    the CNI entries running. It finds them by badsum's marks now."""
    host.write("/run/cat/net.d/10-pods.conflist", json.dumps(CONFLIST))
    host.sh("mkdir -p /run/cat/bin")
    tenant_namespace(host, "cat-a")
    host.ok(*APPLY)
    state = record(host)["dir"]
    host.sh(f"rm {state}/state.json")
    answer = host.ok(*ROLLBACK)
    assert "badsum-rx-off" not in host.sh("cat /run/cat/net.d/10-pods.conflist").stdout
    assert host.sh("test -e /run/cat/bin/badsum-rx-off", check=False).returncode != 0
    assert host.sh(f"test -e {state}/guard.pid", check=False).returncode != 0
    assert not guards(host), answer
    assert host.rx("cat-a", "eth0") == "off"  # nothing says it was badsum's: the safe side


def rollback_with_an_empty_record_leaves_everything_in_place(host: Host) -> None:
    """An empty (or corrupt) state.json was taken as no remediation: now as a record that cannot be used."""
    host.ok(*APPLY)
    state = record(host)["dir"]
    host.sh(f": > {state}/state.json")
    answer = host.ok(*ROLLBACK)
    assert any("unusable remediation record" in c for c in answer["changes"]), answer
    assert not guards(host)
    assert host.sh(f"test -e {state}/state.json", check=False).returncode != 0


def apply_over_a_corrupt_record_loses_it(host: Host) -> None:
    """apply would have written a new record over one it could not read: it refuses and says to roll back."""
    host.ok(*APPLY)
    state = record(host)["dir"]
    host.sh(f"echo '{{' > {state}/state.json")
    code, answer = host.kit(*APPLY)
    assert code == 2 and "roll back first" in answer["msg"]


def a_renamed_host_keeps_its_guard_after_rollback(host: Host) -> None:
    """The record is per host name: after a rename rollback found none and left the guard. Marks find it now."""
    tenant_namespace(host, "cat-a")
    host.ok(*APPLY)
    host.sh("hostname host1-renamed")
    try:
        answer = host.ok(*ROLLBACK)
    finally:
        host.sh("hostname host1")
    assert any("guard daemon" in c for c in answer["changes"]), answer
    assert not guards(host)


def a_failed_verification_leaves_the_host_half_remediated(host: Host) -> None:
    """A rollout whose verification failed left its changes: its own call puts the host back now, and fails."""
    tenant_namespace(host, "cat-a")
    host.sh("mkdir -p /run/cat/net.d /run/cat/bin")
    code, answer = host.kit(*ROLLOUT, "--emulate-bug", "--guard", "none", timeout=300)
    assert code == 2 and "put back as it was" in answer["msg"], json.dumps(answer)[-3000:]
    assert host.rx("cat-a", "eth0") == "on"
    assert not record(host)["recorded"]


def a_patched_kernel_keeps_the_workaround_forever(host: Host) -> None:
    """After a kernel upgrade the audit said `patched` and the workaround stayed: it is its own class now,
    and a rollout with --retire takes it away."""
    tenant_namespace(host, "cat-a")
    host.ok(*APPLY)
    assert host.ok("audit", "show", *CNI, *NO_TEXTFILE)["risk"] == "obsolete-workaround"
    answer = host.ok(*ROLLOUT, "--retire", "--guard", "auto")
    assert answer["action"].startswith("retired the workaround"), answer
    assert answer["after"]["risk"] == "patched" and host.rx("cat-a", "eth0") == "on"


def the_guard_changes_list_grows_for_the_whole_boot(host: Host) -> None:
    """One line per protected veth, forever: gone containers' lines are dropped now, and the list is capped."""
    host.ok(*APPLY)
    state = record(host)["dir"]
    host.sh(
        "for i in $(seq 1 60); do ip netns add cat-g$i; ip link add catg$i type veth peer name eth0 netns cat-g$i; "
        "done; sleep 1; for i in $(seq 1 60); do ip netns del cat-g$i; done",
        timeout=120,
    )
    lines = int(host.sh(f"wc -l < {state}/guard-changes.jsonl").stdout)
    assert lines >= 60
    script = (
        "import json,sys; sys.path.insert(0, sys.argv[1]); from badsum.host.fleet import guard; "
        "guard.CHANGES_LIMIT = 0; s = guard.Sweeper(guard.containers.own_cgroup(), check=True); s.full(); "
        "f = guard.Files(sys.argv[2]); "
        "f.record_changes([{'netns': 1, 'ifindex': 2, 'ifname': 'x', 'owner': 'y', 'rx': 'on'}], s)"
    )
    host.sh(f"python3 -c {json.dumps(script)} {host.kit_path} {state}")
    assert int(host.sh(f"wc -l < {state}/guard-changes.jsonl").stdout) < 60


def a_guard_unit_without_limits_can_take_the_host_down(host: Host) -> None:
    """The unit had no CPU, memory or task bound: it has them now (systemd checks each in test_persistence)."""
    script = "import sys; sys.path.insert(0, sys.argv[1]); from badsum.host.fleet import persistence; "
    script += "print(persistence.unit_text(60))"
    unit = host.sh(f"python3 -c {json.dumps(script)} {host.kit_path}").stdout
    assert "MemoryMax=" in unit and "TasksMax=" in unit and "CPUQuota=" in unit


def the_canary_cells_disarm_removes_someone_elses_filter(host: Host) -> None:
    """The injector's disarm removed whatever filter sat at its preference (49), whoever put it there: the
    canary cell runs on a production host. Only badsum's own program is removed now."""
    host.sh(
        "ip link add cat-f0 type veth peer name cat-f1 && tc qdisc add dev cat-f0 clsact && "
        "tc filter add dev cat-f0 ingress pref 49 protocol all u32 match u32 0 0 flowid 1:1"
    )
    try:
        host.ok("corruptor", "disarm", "--iface", "cat-f0")
        assert "pref 49" in host.sh("tc filter show dev cat-f0 ingress").stdout
    finally:
        host.sh("ip link del cat-f0", check=False)


def a_non_utf8_vxlan_name_or_a_recreated_device_escapes_the_second_hazards_guard(host: Host) -> None:
    """The audit and the guard knew veths only: a vxlan device (here named in bytes) kept tx-checksum-ip-generic
    on behind kube-proxy's MASQUERADE, and flannel's recreated device came back with it on. Now the audit calls
    the host exposed, remediation turns it off, the guard turns the recreated one off, rollback turns it on."""
    overlay(host, "$'vx\\xff'")
    found = host.ok(*AUDIT)["vxlan"]
    assert found["risk"] == "exposed" and [d["ifname"] for d in found["devices"]] == ["vx\\xff"], found
    host.ok(*APPLY)
    assert knob(host, "$'vx\\xff'") == "off"
    host.sh("ip link del $'vx\\xff'")
    overlay(host, "$'vx\\xff'")  # flannel recreates its device on a restart, the offload on
    deadline = time.monotonic() + 3
    while knob(host, "$'vx\\xff'") != "off" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert knob(host, "$'vx\\xff'") == "off", "the guard left the recreated vxlan device's offload on"
    assert host.ok(*AUDIT)["vxlan"]["risk"] == "mitigated"
    answer = host.ok(*ROLLBACK)
    assert knob(host, "$'vx\\xff'") == "on", answer  # the guard's change, recorded: undone


def rollback_turns_on_a_recreated_vxlan_device(host: Host) -> None:
    """A vxlan device deleted and made again (a new ifindex) after the rollout, its offload turned off by its
    owner: a rollback that knew devices by name turned it on. Only the very device badsum turned off is."""
    overlay(host)
    host.ok(*APPLY)
    host.sh(f"kill $(cat {record(host)['dir']}/guard.pid); sleep 0.3")  # the new one is not the guard's doing
    host.sh("ip link del flannel.1")
    overlay(host, knob="off")
    answer = host.ok(*ROLLBACK)
    assert knob(host) == "off" and answer["vxlan_gone"] == ["flannel.1"], answer


def rollback_turns_on_a_vxlan_offload_the_operator_had_turned_off(host: Host) -> None:
    """flannel's docs' udev rule (or an operator) had turned the offload off before the rollout: not badsum's
    change, it stays off; the device badsum turned off goes back on."""
    overlay(host, knob="off")
    overlay(host, "catvx0")
    host.ok(*APPLY)
    assert knob(host, "catvx0") == "off"
    host.ok(*ROLLBACK)
    assert (knob(host), knob(host, "catvx0")) == ("off", "on")


def retiring_the_veth_workaround_takes_the_vxlan_one_with_it(host: Host) -> None:
    """A kernel with the veth fix made the whole workaround obsolete, and --retire rolled back the VXLAN knob too,
    though the veth fix says nothing of the second hazard. Its part is kept now, on a record of its own."""
    tenant_namespace(host, "cat-a")
    overlay(host)
    host.ok(*APPLY)
    assert host.ok(*AUDIT)["risk"] == "obsolete-workaround"
    answer = host.ok(*ROLLOUT, "--retire", "--guard", "auto")
    assert answer["action"].startswith("retired the workaround") and host.rx("cat-a", "eth0") == "on", answer
    assert knob(host) == "off" and answer["after"]["vxlan"]["risk"] == "mitigated", answer
    assert answer["after"]["risk"] == "patched", answer  # the VXLAN record is no veth workaround


def check_mode_turns_a_vxlan_offload_off(host: Host) -> None:
    """Check mode says what it would change on a vxlan device, and changes nothing (no record, no guard)."""
    overlay(host)
    answer = host.ok(*APPLY, "--check")
    assert "tx-checksum-ip-generic on -> off: flannel.1 (vxlan)" in answer["changes"], answer
    rolled = host.ok(*ROLLOUT, "--check", "--guard", "daemon")
    assert rolled["action"].startswith("would make"), rolled
    assert knob(host) == "on" and not record(host)["recorded"] and not guards(host)


def a_hung_rules_dump_or_ethtool_hangs_the_audit(host: Host) -> None:
    """iptables-save (and ethtool) hung: the audit waited for them. The rules are read within one budget, a hung
    reader killed whole (its child too), the host called exposed (fail open); ethtool is never run at all."""
    host.sh("mkdir -p /run/cat/hang")
    for tool in ("iptables-nft-save", "iptables-legacy-save", "iptables-save", "nft", "ethtool"):
        host.write(f"/run/cat/hang/{tool}", "#!/bin/bash\necho $$ >> /run/cat/hang.pids\nsleep 600\n")
    host.sh("chmod +x /run/cat/hang/*")
    overlay(host)
    started = time.monotonic()
    found = host.ok(*AUDIT, prefix="PATH=/run/cat/hang:$PATH", timeout=90)["vxlan"]
    assert time.monotonic() - started < 30, "the audit waited for the hung rules dump"
    assert found["risk"] == "exposed" and "did not finish" in found["rules_unreadable"][0], found
    host.ok(*APPLY, prefix="PATH=/run/cat/hang:$PATH", timeout=90)
    assert knob(host) == "off"
    time.sleep(0.5)  # killed at once; the orphaned child's reaping may take a moment
    left = host.sh("for g in $(cat /run/cat/hang.pids); do pgrep -g $g; done", check=False).stdout
    assert not left.strip(), f"a hung reader was left behind: {left}"


CASES: list[Callable[[Host], None]] = [
    guard_sweep_from_a_scratch_namespace_turns_the_host_veths_off,
    audit_from_ip_netns_exec_misjudges_the_host,
    a_non_utf8_interface_name_stops_the_audit,
    a_non_utf8_interface_name_stops_the_guard,
    terminal_escapes_in_a_name_reach_the_operators_screen,
    a_process_with_a_non_utf8_name_stops_the_audit,
    thousands_of_namespaces_overflow_the_audit,
    namespaces_vanishing_mid_pass_stop_the_guard,
    an_event_storm_makes_the_guard_spin,
    a_lib_dir_another_user_owns_runs_code_as_root,
    a_lib_dir_writable_by_others_runs_code_as_root,
    a_kit_file_writable_by_others_runs_as_root,
    a_forged_lab_mark_makes_any_namespace_a_host,
    rollback_writes_back_a_week_old_conflist,
    rollback_brings_back_a_deleted_conflist,
    rollback_turns_on_a_newer_container_that_got_a_freed_inode,
    rollback_undoes_a_change_made_since,
    rollback_turns_on_a_veth_the_runtime_had_turned_off,
    a_container_exiting_during_rollback_aborts_it,
    rollback_without_a_record_leaves_everything_in_place,
    rollback_with_an_empty_record_leaves_everything_in_place,
    apply_over_a_corrupt_record_loses_it,
    a_renamed_host_keeps_its_guard_after_rollback,
    a_failed_verification_leaves_the_host_half_remediated,
    a_patched_kernel_keeps_the_workaround_forever,
    the_guard_changes_list_grows_for_the_whole_boot,
    a_guard_unit_without_limits_can_take_the_host_down,
    the_canary_cells_disarm_removes_someone_elses_filter,
    a_non_utf8_vxlan_name_or_a_recreated_device_escapes_the_second_hazards_guard,
    rollback_turns_on_a_recreated_vxlan_device,
    rollback_turns_on_a_vxlan_offload_the_operator_had_turned_off,
    retiring_the_veth_workaround_takes_the_vxlan_one_with_it,
    check_mode_turns_a_vxlan_offload_off,
    a_hung_rules_dump_or_ethtool_hangs_the_audit,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_fault(case: Callable[[Host], None], clean: Host) -> None:
    case(clean)


def test_the_catalogue_names_each_case_once() -> None:
    names = [c.__name__ for c in CASES]
    assert len(names) == len(set(names)) and all(c.__doc__ for c in CASES)
