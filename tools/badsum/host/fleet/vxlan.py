"""The fleet's second hazard: NAT rewriting a VXLAN overlay's outer UDP checksum (2020), audited and worked around.

A flannel or Calico VXLAN device (flannel.1, vxlan.calico, cilium_vxlan; any
link of kind vxlan) hands the inner TCP segment on unfinished
(CHECKSUM_PARTIAL) while it has tx-checksum-ip-generic on. When a
MASQUERADE rule also matches the *outer* UDP packet - kube-proxy's
`-m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully` before
kubernetes#92035 (1.16.13, 1.17.9, 1.18.6): the mark survives encapsulation -
NAT's checksum update goes wrong and the receiving node drops valid packets
(UdpInCsumErrors; connections stall 1 s, or 63 s on 2020's TCP):

- outer checksum 0 (the 2020 default): NAT "updates" the 0 into a wrong
  value on kernels without ea64d8d6c675 (kernels.classify_nat_zero_csum);
- outer checksum on (today's default): NAT leaves the pre-NAT checksum in
  place on every kernel measured (6.18; no fix known).

The workaround is `ethtool -K DEV tx-checksum-ip-generic off` on the vxlan
device (Calico: FELIX_FEATUREDETECTOVERRIDE=ChecksumOffloadBroken=true):
the stack then finishes the inner checksum before NAT sees the packet.

The hazard's class, apart from the 2016 one (audit.py's `risk`):

    exposed         a vxlan device with the knob on whose variant applies, and a
                    NAT rule that rewrites outer VXLAN packets (or rules that could
                    not be read: treated as present)
    latent          such a device, but no such rule today (a kube-proxy downgrade or
                    a new MASQUERADE would expose it)
    mitigated       every vxlan device whose variant applies has the knob off
    not-affected    vxlan devices, none of them affected (outer checksum 0 on a
                    kernel with the fix)
    not-applicable  no vxlan device on this host

With emulate_bug (badsum_fleet_emulate_bug: labs only, as the veth probe's
emulator), the kernel is taken to lack ea64d8d6c675 whatever it is: the
emulated fleet's kernel has it, and the experiment's vxlan-nat cell puts the
unfixed NAT back with its emulator (shared/programs/vxlannat.bpf.c). The audit,
the remediation record and the guard then treat a zero-checksum device as the
2020 kernels made it, affected - so the canary's vxlan-nat cell can prove them.

Devices live in the host's namespace. A device is known again by this boot,
its ifindex and its name: the kernel hands out ifindexes cyclically and never
reuses one within a boot before 2^31 more devices, so a device that flannel
deleted and recreated is a new one (rollback leaves it alone; the guard, when
remediation asked for it, switches it off again). Physical NICs are never
touched: only links of kind vxlan.
"""

# Longer than ~300 lines: the second hazard on one host - its devices, the NAT rules that rewrite them, the
#   class, and the knob switched off and restored exactly - is one contract with rollback, read in one place.

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from typing import Callable, Dict, List, Optional, Tuple

from ..shared import kernels, metrics, netlink
from ..shared.common import HostError, boot_id, shown
from . import vxlan_probe

RISKS = metrics.VXLAN_RISKS
# What remediation acts on (badsum_fleet_vxlan_remediation): the classes whose devices it switches off.
MODES = metrics.VXLAN_REMEDIATION
# The zero-checksum fix treated as missing (emulate_bug): what decided_by says.
EMULATED = "the bug emulated (badsum_fleet_emulate_bug): ea64d8d6c675 treated as missing"
RULES_BUDGET = 15.0  # seconds for every iptables-save and nft together
KUBE_MARK = "0x4000"


def _knob(name: str) -> Tuple[Optional[bool], bool]:
    """(tx-checksum-ip-generic on?, can it be changed); (None, False) when the device will not say."""
    try:
        f = netlink.feature(name)
    except HostError:
        return None, False
    return f["active"], f["changeable"]


def affected(udp_csum: Optional[bool], nat_fix: str, lco_broken: str = "yes") -> Tuple[bool, str]:
    """Whether NAT breaks this device's outer packets (the knob aside), and which variant.

    nat_fix: the release table's (or the probe's) fixed|unfixed|unknown;
    lco_broken: the probe's answer for an outer checksum that is on (yes
    unless the probe saw it arrive: no kernel fix is known).
    """
    if udp_csum is False:
        if nat_fix == "fixed":
            return False, "outer checksum 0, and the kernel has ea64d8d6c675: NAT leaves the 0 alone"
        return (
            True,
            f"outer checksum 0 on a kernel {'without' if nat_fix == 'unfixed' else 'maybe without'} ea64d8d6c675",
        )
    if udp_csum is True and lco_broken == "no":
        return False, "outer checksum on, and the probe saw NAT update it correctly on this kernel"
    if udp_csum is True:
        return True, "outer checksum on: NAT keeps the pre-NAT checksum (no kernel fix known)"
    return True, "outer checksum unknown (the kernel does not say): either variant may apply"


def devices(nat_fix: str, lco_broken: str = "yes") -> List[dict]:
    """Every link of kind vxlan in this namespace: its attributes, the knob, and whether NAT would break it."""
    found = []
    for link in netlink.links():
        if link.kind != "vxlan":
            continue
        info = netlink.vxlan_info(link.info_data)
        on, changeable = _knob(link.name)
        hit, why = affected(info["udp_csum"], nat_fix, lco_broken)
        found.append(
            {
                "ifindex": link.index,
                "ifname": shown(link.name),
                **info,
                "tx_csum_generic": {True: "on", False: "off", None: "unknown"}[on],
                "changeable": changeable,
                "affected": hit,
                "variant": why,
            }
        )
    return found


# -- NAT rules that can rewrite an outer VXLAN packet -------------------------------------------------


def _read(argv: List[str], timeout: float) -> Tuple[Optional[str], str]:
    """(the command's output, or None; why not): in a session of its own, killed whole when it overruns.

    subprocess.run's timeout kills the command only: a wrapper script's child
    that holds the pipe open would keep the audit waiting for it.
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            start_new_session=True,
        )
    except OSError as exc:
        return None, f"`{argv[0]}` cannot run: {exc.strerror}"
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, f"`{' '.join(argv)}` did not finish within {timeout:.0f} s"
    if proc.returncode != 0:
        return None, f"`{' '.join(argv)}` failed: {err.strip()[:200]}"
    return out, ""


def rule_dumps(budget: float = RULES_BUDGET) -> Tuple[Dict[str, str], List[str]]:
    """({backend: nat table text}, problems): every iptables backend there is, and nft's ruleset; read-only.

    All of them together within `budget` seconds: a hung one is "unreadable", never a hung audit.
    """
    deadline = time.monotonic() + budget
    dumps: Dict[str, str] = {}
    problems: List[str] = []
    tools = [("iptables-" + b, ["iptables-" + b + "-save", "-t", "nat"]) for b in ("nft", "legacy")]
    if not any(shutil.which(argv[0]) for _, argv in tools):
        tools.append(("iptables", ["iptables-save", "-t", "nat"]))
    tools.append(("nft", ["nft", "list", "ruleset"]))
    for backend, argv in tools:
        path = shutil.which(argv[0])
        if not path:
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            problems.append(f"{backend}: not read, the {budget:g} s for reading the rules were spent")
            continue
        text, problem = _read([path, *argv[1:]], left)
        if problem:
            problems.append(f"{backend}: {problem}")
        elif text and text.strip():
            dumps[backend] = text
    return dumps, problems


def _restricts(spec: str, flag: str, addresses: List[str]) -> Optional[str]:
    """For -s/-d: "blocks" when the CIDR cannot hold the outer packet's address, "no", None: not checkable."""
    m = re.search(r"(! )?" + flag + r" (\S+)", spec)
    if not m:
        return "no"
    if not addresses:
        return None
    try:
        net = ipaddress.ip_network(m.group(2), strict=False)
        inside = any(ipaddress.ip_address(a) in net for a in addresses)
    except ValueError:
        return None
    return "blocks" if inside == bool(m.group(1)) else "no"


def iptables_findings(text: str, sources: List[str] = (), destinations: List[str] = ()) -> List[dict]:
    """MASQUERADE/SNAT rules reachable from nat POSTROUTING that can rewrite a node's own outer VXLAN packet.

    The outer packet leaves from the node's address, UDP, to the tunnel port,
    with the inner packet's mark. A rule matches it unless it needs a source
    the node's address is not in (-s POD_CIDR, an ipset of pools), another
    protocol, or the kube-proxy mark after a rule cleared it (--xor-mark
    0x4000: kubernetes#92035). It *rewrites* only with --random-fully,
    --random, --to-ports or SNAT: plain MASQUERADE keeps the node's address
    and, usually, its port (no manip, no bug).
    """
    chains: Dict[str, List[str]] = {}
    for line in text.splitlines():
        if line.startswith("-A ") and " " in line[3:]:
            chain, spec = line[3:].split(" ", 1)
            chains.setdefault(chain, []).append(spec)
    findings: List[dict] = []

    def walk(chain: str, path: List[str], cleared: bool, needs_mark: bool) -> None:
        for spec in chains.get(chain, []):
            if re.search(r"-j MARK --(xor-mark 0x4000|set-xmark 0x4000/0x0|set-xmark 0x0/0x4000)\b", spec):
                cleared = True
            if re.search(r"-m mark ! --mark 0x4000/0x4000 -j RETURN", spec):
                needs_mark = True  # the #92035 shape: what follows sees only marked packets
            jump = re.search(r"-j (\S+)", spec)
            if not jump:
                continue
            target = jump.group(1)
            if target in chains and target not in path and len(path) < 32:
                walk(target, [*path, target], cleared, needs_mark)
                continue
            if target not in ("MASQUERADE", "SNAT"):
                continue
            blocks, notes = [], []
            for flag, addresses, what in (("-s", sources, "source"), ("-d", destinations, "destination")):
                r = _restricts(spec, flag, list(addresses))
                if r == "blocks":
                    blocks.append(f"{flag} excludes the outer packet's {what}")
                elif r is None:
                    notes.append(f"{flag} not checked (the outer {what} is unknown)")
            if re.search(r"(?<!! )--match-set \S+ src", spec):
                blocks.append("the source must be in an ipset (pods, pools)")
            proto = re.search(r"(?<!! )-p (\S+)", spec)
            if proto and proto.group(1) not in ("udp", "17", "all"):
                blocks.append(f"protocol {proto.group(1)}")
            if needs_mark or re.search(r"-m mark --mark 0x4000/0x4000", spec):
                if cleared:
                    blocks.append("needs the 0x4000 mark, cleared before it (kubernetes#92035 shape)")
                else:
                    notes.append("needs the 0x4000 mark, NOT cleared: the outer packet keeps it")
            rewrites = target == "SNAT" or any(k in spec for k in ("--random-fully", "--random", "--to-ports"))
            findings.append(
                {
                    "backend": "",
                    "chain": chain,
                    "rule": spec[:300],
                    "matches": not blocks,
                    "rewrites": rewrites,
                    "blocked_by": blocks,
                    "notes": notes,
                }
            )

    walk("POSTROUTING", ["POSTROUTING"], False, False)
    return findings


def nft_findings(text: str) -> List[dict]:
    """Native nftables (kube-proxy's nftables mode, Calico's): masquerade/snat rules with a random port.

    A heuristic, line by line: a rule that masquerades with fully-random (or
    random, or to a port) and restricts neither the source address nor the
    protocol to anything but UDP is taken as able to rewrite outer packets.
    iptables-nft's own tables (`ip nat`, `ip6 nat`) are skipped: iptables-nft-save
    reads them, chains and marks followed.
    """
    found = []
    table = ""
    for line in text.splitlines():
        rule = line.strip()
        m = re.match(r"table (\S+) (\S+) \{", rule)
        if m:
            table = f"{m.group(1)} {m.group(2)}"
            continue
        if table in ("ip nat", "ip6 nat") or not re.search(r"\b(masquerade|snat)\b", rule):
            continue
        blocks = []
        if re.search(r"\b(ip6? saddr|saddr @)", rule):
            blocks.append("a source address restriction (not checked)")
        if re.search(r"\b(meta l4proto|ip protocol) (tcp|sctp|icmp)", rule):
            blocks.append("another protocol")
        rewrites = bool(re.search(r"fully-random|\brandom\b|to :\d+|\bsnat\b", rule))
        found.append(
            {
                "backend": "nft",
                "chain": table,
                "rule": rule[:300],
                "matches": not blocks,
                "rewrites": rewrites,
                "blocked_by": blocks,
                "notes": [],
            }
        )
    return found


def nat_rules(found: List[dict], dumps: Optional[Dict[str, str]] = None) -> Tuple[List[dict], List[str]]:
    """The NAT rules that can rewrite these devices' outer packets, and what could not be read."""
    problems: List[str] = []
    if dumps is None:
        dumps, problems = rule_dumps()
    sources = [d["local"] for d in found if d.get("local")]
    rules: List[dict] = []
    for backend, text in dumps.items():
        batch = nft_findings(text) if backend == "nft" else iptables_findings(text, sources)
        rules += [{**r, "backend": backend} for r in batch]
    return rules, problems


# -- the class -----------------------------------------------------------------------------------------


def classify(found: List[dict], rules: List[dict], problems: List[str]) -> Tuple[str, str]:
    """The host's VXLAN class, and why."""
    if not found:
        return "not-applicable", "no vxlan device on this host"
    hit = [d for d in found if d["affected"]]
    if not hit:
        return "not-affected", "every vxlan device has outer checksum 0 and the kernel has ea64d8d6c675"
    on = [d for d in hit if d["tx_csum_generic"] != "off"]
    if not on:
        return "mitigated", f"tx-checksum-ip-generic is off on {', '.join(d['ifname'] for d in hit)}"
    names = ", ".join(f"{d['ifname']} ({d['variant']})" for d in on)
    rewriting = [r for r in rules if r["matches"] and r["rewrites"]]
    if rewriting:
        first = rewriting[0]
        return "exposed", (
            f"tx-checksum-ip-generic on: {names}; {len(rewriting)} NAT rule(s) rewrite outer VXLAN packets, "
            f"e.g. {first['backend']} {first['chain']} {first['rule']}"
        )
    if problems:
        return "exposed", f"tx-checksum-ip-generic on: {names}; the NAT rules could not be read ({problems[0]})"
    return "latent", f"tx-checksum-ip-generic on: {names}; no NAT rule rewrites outer VXLAN packets today"


def nat_status(status: str, emulate_bug: bool = False) -> str:
    """The zero-checksum fix's status as the hazard is judged: "unfixed" when the bug is emulated (labs)."""
    return "unfixed" if emulate_bug else status


def audit(dumps: Optional[Dict[str, str]] = None, probe: bool = False, emulate_bug: bool = False) -> dict:
    """This namespace's part of the audit for the VXLAN hazard (read-only).

    With probe, on a host that has a vxlan device, the active probe
    (vxlan_probe.py, ~2 s) decides from the kernel's behaviour: its answers
    win over the release table, as the veth probe's do (audit.vulnerability).
    With emulate_bug, the fix is treated as missing whatever they say (labs).
    """
    release = os.uname().release
    nat_fix = kernels.classify_nat_zero_csum(release)
    probed = None
    if probe and any(x.kind == "vxlan" for x in netlink.links()):
        try:
            probed = vxlan_probe.run_probe()
        except HostError as exc:
            probed = {"verdict": "inconclusive", "kind": "real", "reason": f"the probe could not run: {exc}"}
    status, lco, decided_by = nat_fix["status"], "yes", f"release table: {nat_fix['reason']}"
    if probed and probed["verdict"] in ("vulnerable", "fixed"):
        status = {"present": "fixed", "missing": "unfixed"}.get(probed["zero_csum_fix"], status)
        lco = probed["lco_broken"] if probed["lco_broken"] in ("yes", "no") else "yes"
        decided_by = f"probe ({probed['kind']}): {probed['reason']}"
    if nat_status(status, emulate_bug) != status:
        status, decided_by = nat_status(status, emulate_bug), f"{decided_by}; {EMULATED}"
    found = devices(status, lco)
    rules, problems = nat_rules(found, dumps) if found else ([], [])
    klass, reason = classify(found, rules, problems)
    if probed:
        cases = {k: v["result"] for k, v in probed.get("cases", {}).items()}
        probed = {**{k: v for k, v in probed.items() if k != "cases"}, "cases": cases}
    return {
        "risk": klass,
        "reason": reason,
        "decided_by": decided_by,
        "probe": probed,
        "kernel": nat_fix,
        "devices": found,
        "rules": [r for r in rules if r["matches"]][:20],
        "rules_unreadable": problems,
    }


# -- the workaround ------------------------------------------------------------------------------------


def switch_off(
    check: bool = False,
    nat_fix: Optional[str] = None,
    record: Optional[Callable[[List[dict]], None]] = None,
    emulate_bug: bool = False,
) -> List[dict]:
    """tx-checksum-ip-generic off on every affected vxlan device that has it on: the records of what changed.

    A device that fails (gone, a driver that refuses) is skipped: the guard
    tries again on its next pass, remediation's verification reports it.
    `record` is told of each device before it changes (the guard's write-ahead:
    killed between the two, it leaves no device off that rollback does not know).
    emulate_bug: the fix treated as missing (labs; the record's vxlan.emulate_bug for the guard).
    """
    status = nat_status(nat_fix or kernels.classify_nat_zero_csum(os.uname().release)["status"], emulate_bug)
    boot = boot_id()
    done = []
    for link in netlink.links():
        if link.kind != "vxlan":
            continue
        hit, _why = affected(netlink.vxlan_info(link.info_data)["udp_csum"], status)
        on, changeable = _knob(link.name)
        if not (hit and on and changeable):
            continue
        item = {"kind": "vxlan", "boot": boot, "ifindex": link.index, "ifname": shown(link.name), "was": "on"}
        if not check and record is not None:
            record([item])  # still on at rollback (the change failed): left as it is
        try:
            if not check:
                netlink.set_feature(link.name, False)
        except HostError:
            continue
        done.append(item)
    return done


def key(item: dict) -> tuple:
    return item.get("boot"), item["ifindex"], item["ifname"]


class Restore:
    """What rollback does with the recorded vxlan devices, decided before anything changes."""

    def __init__(self) -> None:
        self.on: List[Tuple[dict, str]] = []  # (record, the link's own name): turned on again
        self.gone: List[dict] = []  # deleted, recreated (another ifindex), or an earlier boot
        self.turned_on: List[dict] = []  # someone turned it on since: left as it is


def plan_restore(recorded: List[dict]) -> Restore:
    plan = Restore()
    boot = boot_id()
    links = {x.index: x for x in netlink.links() if x.kind == "vxlan"}
    for item in {key(i): i for i in recorded if i.get("was") == "on"}.values():
        link = links.get(item["ifindex"])
        if item.get("boot") != boot or link is None or shown(link.name) != item["ifname"]:
            plan.gone.append(item)
            continue
        on, _changeable = _knob(link.name)
        if on is None:
            plan.gone.append(item)
        elif on:
            plan.turned_on.append(item)
        else:
            plan.on.append((item, link.name))
    return plan


def restore(plan: Restore) -> None:
    for item, name in list(plan.on):
        try:
            netlink.set_feature(name, True)
        except HostError:  # deleted meanwhile: counted, never fatal
            plan.on.remove((item, name))
            plan.gone.append(item)
