"""badsum-rx-off never blocks a pod: chained after Debian's real CNI plugins, under every fault, by a runtime-shaped
caller (cnichain: libcni's order, environment, per-plugin configuration and prevResult; DEL in reverse).

Each ADD case: exit 0, the output is the previous plugin's result (in the list's cniVersion), within 1 s, and
rx-checksumming is off on the pod's veth or the plugin's log says why not; nothing the call started outlives it.
Each command case: what the CNI spec (1.0/1.1) asks of DEL, CHECK, GC, STATUS and VERSION, malformed input included.
"""

import json
import os
import time
from pathlib import Path

import cnichain
import pytest

from badsum.host.fleet import cni

BOUND = 1.0  # seconds: the bar for one ADD, whatever the fault
BRIDGE = "bsbr0"
VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


class Case:
    """One ADD through a chain. expect: "off" (rx off on the device), or (outcome, words) that the log must hold,
    with rx left as it was when outcome is "not-veth" or "skipped"."""

    def __init__(self, chain: str = "bridge", fault: str = "nothing broken", expect: object = "off", **more) -> None:
        self.chain, self.fault, self.expect = chain, fault, expect
        self.ifname: bytes = more.get("ifname", b"eth0")
        self.version: str = more.get("version", "1.0.0")
        self.log: str = more.get("log", "plain")  # "symlink", "huge"
        self.vanish: bool = more.get("vanish", False)


PYTHON_GONE = ("fallback", "python3 is missing")
CASES = {
    "veth made by bridge, nothing broken": Case(),
    "veth made by bridge, CNI 0.4.0": Case(version="0.4.0"),
    "veth made by bridge, CNI 0.3.1": Case(version="0.3.1"),
    "ethtool absent": Case(fault="ethtool absent"),
    "ethtool failing": Case(fault="ethtool failing"),
    "ethtool hanging 60 s": Case(fault="ethtool hanging 60 s"),
    "nsenter absent": Case(fault="nsenter absent"),
    "python3 absent": Case(fault="python3 absent", expect=PYTHON_GONE),
    "python3 hanging 60 s": Case(fault="python3 hanging 60 s", expect=("fallback", "did not finish within")),
    "python3 exits 1": Case(fault="python3 exits 1", expect=("fallback", "gave no result (exit 1)")),
    "python3 prints garbage": Case(fault="python3 prints garbage", expect=("fallback", "gave no result (exit 0)")),
    "python3 leaves a child holding its output": Case(
        fault="python3's child holds its output", expect=("fallback", "gave no result (exit 0)")
    ),
    "macvlan is not a veth": Case(chain="macvlan", expect=("not-veth", "a macvlan")),
    "vxlan moved in by host-device is not a veth": Case(chain="host-device", expect=("not-veth", "a vxlan")),
    "lo (loopback plugin) is not a veth": Case(chain="loopback", ifname=b"lo", expect=("not-veth", "loopback")),
    "interface name not UTF-8": Case(ifname=b"\xffeth\xfe"),
    "interface name not UTF-8, python3 exits 1": Case(
        ifname=b"\xffeth\xfe", fault="python3 exits 1", expect=("fallback", "gave no result (exit 1)")
    ),
    "pod namespace vanished before the plugin ran": Case(vanish=True, expect=("failed", "cannot open the pod's")),
    "CNI_NETNS is the host's own namespace": Case(chain="host", ifname=b"bshost0", expect=("skipped", "own network")),
    "log is a symlink (python writes it)": Case(chain="loopback", ifname=b"lo", log="symlink", expect=None),
    "log is a symlink (the shell writes it)": Case(fault="python3 exits 1", log="symlink", expect=None),
    "log is huge (python writes it)": Case(chain="loopback", ifname=b"lo", log="huge", expect=("not-veth", "")),
    "log is huge (the shell writes it)": Case(fault="python3 exits 1", log="huge", expect=("fallback", "exit 1")),
}


def chain_for(case: Case, ns: cnichain.Namespaces, tmp: Path, bin_dir: Path, log: Path) -> cnichain.Chain:
    """The list of plugins, with what the host must hold for it (made in the scratch host namespace)."""
    ipam = cnichain.ipam(tmp / "ipam")
    first = {
        "bridge": [{"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipam": ipam}],
        "macvlan": [{"type": "macvlan", "master": "bsup0", "mode": "bridge", "ipam": ipam}],
        "host-device": [{"type": "host-device", "device": "bsvx0"}],
        "loopback": [{"type": "loopback"}],
        "host": [],
    }[case.chain]
    if case.chain == "macvlan":
        cnichain.ip("-n", ns.host, "link", "add", "bsup0", "type", "veth", "peer", "name", "bsup1")
        cnichain.ip("-n", ns.host, "link", "set", "bsup0", "up")
    if case.chain == "host-device":  # a vxlan: not a veth, and its rx-checksumming CAN be turned off
        cnichain.ip("-n", ns.host, "link", "add", "bsvx0", "type", "vxlan", "id", "42", "dstport", "4789")
    if case.chain == "host":
        cnichain.ip("-n", ns.host, "link", "add", case.ifname, "type", "veth", "peer", "name", "bshost1")
    return cnichain.Chain("bsnet", case.version, [*first, cnichain.badsum_entry(log)], bin_dir)


def prepare_log(case: Case, tmp: Path) -> "tuple[Path, Path | None]":
    """The log path the entry names, and (for the symlink case) the file the link points to."""
    logs = tmp / "logs"
    logs.mkdir(mode=0o755)
    log = logs / "rx.jsonl"
    victim = None
    if case.log == "symlink":
        victim = tmp / "precious"
        victim.write_text("not a log\n")
        log.symlink_to(victim)
    elif case.log == "huge":
        with open(log, "wb") as f:
            f.truncate(100 << 20)  # sparse: 100 MiB that no writer of ours made
    return log, victim


@pytest.mark.parametrize("name", CASES)
def test_add_returns_the_previous_result_in_time_whatever_breaks(name, scratch, tmp_path, bin_dir) -> None:
    case, ns = CASES[name], scratch
    fault = cnichain.faults()[case.fault]
    log, victim = prepare_log(case, tmp_path)
    chain = chain_for(case, ns, tmp_path, bin_dir, log)
    netns = ns.path(ns.host) if case.chain == "host" else ns.path(ns.pod)
    rx_before = {}

    def before_badsum() -> None:
        rx_before["rx"] = cnichain.rx(netns, case.ifname)
        if case.vanish:
            cnichain.ip("netns", "del", ns.pod)

    steps = chain.add(
        ns,
        case.ifname,
        "c-" + "".join(ch if ch.isalnum() else "-" for ch in name)[:60],
        netns=netns,
        mounts={cnichain.PLUGIN: fault.mounts(tmp_path / "fault")},
        before={cnichain.PLUGIN: before_badsum},
    )
    try:
        *others, badsum = steps
        assert badsum.plugin == cnichain.PLUGIN, f"the chain stopped before badsum-rx-off: {steps[-1].call}"
        assert all(s.call.rc == 0 for s in others)
        prev = badsum.conf.get("prevResult")
        assert badsum.call.rc == 0 and not badsum.call.timed_out, badsum.call
        assert badsum.call.seconds <= BOUND, badsum.call
        want = {**prev, "cniVersion": case.version} if prev is not None else {"cniVersion": case.version}
        assert badsum.call.json() == want
        time.sleep(0.05)  # a SIGKILLed process is reaped by init
        fault.end_escaped()
        assert fault.leftovers() == [], "a fake the plugin started outlived the call"
        records = [r for r in cni.read_log(str(log)) if r.get("ifname_hex") == case.ifname.hex()]
        if case.expect == "off":
            assert cnichain.rx(netns, case.ifname) is False
            assert [r for r in records if r["outcome"] != "not-veth"] == []
        elif case.expect is not None:
            outcome, words = case.expect
            assert any(r["outcome"] == outcome and words in r["reason"] for r in records), records
            if outcome in ("not-veth", "skipped"):
                assert cnichain.rx(netns, case.ifname) == rx_before["rx"]
        if victim is not None:
            assert victim.read_text() == "not a log\n" and log.is_symlink()
            assert b"not logged" in badsum.call.stderr
        if case.log == "huge":
            assert sum(p.stat().st_size for p in (log, Path(f"{log}.1")) if p.exists()) <= 64 << 10
    finally:
        gone = chain.delete(ns, case.ifname, "c-cleanup", last_result(steps), netns=netns)
    assert gone[0].plugin == cnichain.PLUGIN and gone[0].call.rc == 0, gone[0].call


def last_result(steps: "list[cnichain.Step]") -> object:
    """The result DEL is given: the last one the ADD produced (what libcni caches)."""
    for step in reversed(steps):
        try:
            return step.call.json() if step.call.rc == 0 else step.conf.get("prevResult")
        except ValueError:
            continue
    return None


CONF = {"cniVersion": "1.0.0", "name": "bsnet", "type": cnichain.PLUGIN}
MALFORMED = {
    "missing": b"",
    "not JSON": b"not json",
    "a JSON array": b'[{"cniVersion": "1.0.0"}]',
    "truncated": json.dumps({**CONF, "prevResult": {"ips": []}}).encode()[:-5],
}


def run(scratch, bin_dir: Path, command: "str | None", stdin: bytes, **env: bytes) -> cnichain.Call:
    base = {b"CNI_CONTAINERID": b"c1", b"CNI_NETNS": scratch.path(scratch.pod).encode(), b"CNI_IFNAME": b"eth0"}
    base[b"CNI_PATH"] = os.fsencode(bin_dir)
    if command is not None:
        base[b"CNI_COMMAND"] = command.encode()
    base.update({k.encode(): v for k, v in env.items()})
    return cnichain.call(bin_dir / cnichain.PLUGIN, base, stdin, scratch.host_fd)


@pytest.mark.parametrize("shape", MALFORMED)
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"])
def test_malformed_or_missing_configuration(command, shape, scratch, bin_dir) -> None:
    """DEL, CHECK, GC and STATUS succeed whatever they are given (DEL: the spec's "always best-effort"); VERSION
    answers; ADD, with no prevResult to pass on, gives the spec's error 6 in its JSON format, in time."""
    done = run(scratch, bin_dir, command, MALFORMED[shape])
    assert done.seconds <= BOUND, done
    if command == "ADD":
        assert done.rc == 1 and set(done.json()) == {"cniVersion", "code", "msg", "details"}, done
        assert done.json()["code"] == 6
    elif command == "VERSION":
        assert done.rc == 0 and done.json() == {"cniVersion": "1.1.0", "supportedVersions": VERSIONS}, done
    else:
        assert done.rc == 0 and done.stdout == b"", done


def test_version_answers_in_the_version_it_was_asked_in(scratch, bin_dir) -> None:
    """SPEC.md, VERSION Success: "cniVersion: the value of cniVersion specified on input"."""
    done = run(scratch, bin_dir, "VERSION", b'{"cniVersion": "0.4.0"}')
    assert done.rc == 0 and done.json() == {"cniVersion": "0.4.0", "supportedVersions": VERSIONS}


@pytest.mark.parametrize("command", [None, "", "UPDATE", "add"], ids=["unset", "empty", "UPDATE", "lower-case add"])
def test_an_unknown_command_is_the_specs_error_4(command, scratch, bin_dir) -> None:
    done = run(scratch, bin_dir, command, json.dumps(CONF).encode())
    assert done.rc == 1 and done.json()["code"] == 4 and "CNI_COMMAND" in done.json()["msg"], done


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_of_cni_1_1_succeed_silently(command, scratch, bin_dir) -> None:
    """GC: nothing of ours to collect; STATUS: ADD is always available (it never fails), so never error 50/51."""
    conf = {**CONF, "cniVersion": "1.1.0", "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}
    done = run(scratch, bin_dir, command, json.dumps(conf).encode(), CNI_NETNS=b"", CNI_IFNAME=b"", CNI_CONTAINERID=b"")
    assert done.rc == 0 and done.stdout == b"", done


def test_del_succeeds_when_the_namespace_is_gone_and_again(scratch, bin_dir) -> None:
    for _ in range(2):  # "Plugins MUST accept multiple DEL calls for the same (CNI_CONTAINERID, CNI_IFNAME)"
        done = run(scratch, bin_dir, "DEL", json.dumps(CONF).encode(), CNI_NETNS=b"/run/netns/bscni-gone")
        assert done.rc == 0 and done.stdout == b"", done


def test_check_succeeds_on_a_veth_that_kept_rx_on(scratch, bin_dir) -> None:
    """A failed CHECK tells the runtime the container is broken for good: worse than the bug, which the guard's next
    pass and the audit cover. So CHECK reports nothing."""
    cnichain.ip("-n", scratch.pod, "link", "add", "eth0", "type", "veth", "peer", "name", "bsp1")
    conf = {**CONF, "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "x"}]}}
    done = run(scratch, bin_dir, "CHECK", json.dumps(conf).encode())
    assert done.rc == 0 and done.stdout == b"", done
    assert cnichain.rx(scratch.path(scratch.pod), b"eth0") is True


def test_add_first_in_a_list_gives_an_empty_result_and_acts(scratch, bin_dir) -> None:
    """No prevResult (the first plugin of a list): the result is empty, in the list's version."""
    cnichain.ip("-n", scratch.pod, "link", "add", "eth0", "type", "veth", "peer", "name", "bsp1")
    done = run(scratch, bin_dir, "ADD", json.dumps(CONF).encode())
    assert done.rc == 0 and done.json() == {"cniVersion": "1.0.0"}, done
    assert cnichain.rx(scratch.path(scratch.pod), b"eth0") is False
