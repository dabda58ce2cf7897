"""A fleet run's outcome for one host, as Prometheus metrics that node_exporter's textfile collector reads.

    render(phase, audit, ok, changes, timestamp)  the text (Prometheus text format 0.0.4)
    publish(args, phase, result)                  the end of `audit show`, `remediate rollout|rollback`:
                                                  with --textfile-dir DIR, DIR/badsum.prom, atomically

The controller renders results/fleet/<run>/metrics/<host>.prom with the same
render() from the host's record (with the timestamp the host used), so the two
files are the same text. The text has no sample timestamps (the textfile
collector refuses them): badsum_last_run_timestamp_seconds says when instead.

This module stays on fleet hosts, some of them RHEL 7-era: standard library
only, and Python 3.6 (no `from __future__ import annotations`, no
dataclasses, typing's generics in annotations).
"""

import argparse
import contextlib
import math
import os
import stat
import time
from typing import Dict, Iterable, List, Optional, Tuple

FILE = "badsum.prom"
# The audit's risk classes (badsum.host.audit.risk), worst first; "unknown": the run could not tell.
RISKS = ("exposed", "obsolete-workaround", "mitigated", "patched", "not-applicable")
UNKNOWN = "unknown"
# The second hazard's classes (badsum.host.fleet.vxlan: NAT and a VXLAN overlay's outer checksum, 2020), worst first.
VXLAN_RISKS = ("exposed", "latent", "mitigated", "not-affected", "not-applicable")
# badsum_fleet_vxlan_remediation: the classes whose vxlan devices remediation switches off.
VXLAN_REMEDIATION = {"never": (), "exposed": ("exposed",), "latent": ("exposed", "latent")}
VULNERABLE = ("yes", "no", "unknown")
# A leftover temporary file older than this is a killed writer's, never a running one's.
STALE_TMP_SECONDS = 60

Labels = Tuple[Tuple[str, str], ...]
Series = Tuple[str, Labels, float]

# Every family, in the order written: name -> help. All are gauges.
FAMILIES = (
    (
        "badsum_host_risk",
        "Risk class of the host for the veth checksum bug as the run left it: 1 for its class, 0 for the others "
        "(unknown: the run could not tell).",
    ),
    (
        "badsum_kernel_vulnerable",
        "Whether the running kernel lacks the veth fix (ce8c839b74e3, Linux 4.4): 1 for the answer (yes, no, unknown).",
    ),
    (
        "badsum_host_vxlan_risk",
        "Risk class of the host for the VXLAN + NAT checksum hazard (2020) as the run left it: 1 for its class, "
        "0 for the others (unknown: the run could not tell).",
    ),
    ("badsum_vxlan_devices_tx_csum_on", "VXLAN devices NAT would break that have tx-checksum-ip-generic on."),
    ("badsum_kernel_info", "The running kernel's release and what decided whether it has the fix (always 1)."),
    ("badsum_container_veths", "Container veths on the host: the receiving ends, in every network namespace."),
    ("badsum_container_veths_rx_on", "Container veths that receive with rx-checksumming on."),
    ("badsum_guard_up", "1 when badsum's guard runs and covers containers created later, else 0."),
    ("badsum_remediation_recorded", "1 when the host carries badsum's workaround (a remediation record), else 0."),
    ("badsum_audit_duration_seconds", "How long the host's audit took."),
    ("badsum_last_run_timestamp_seconds", "When the run finished with this host, in seconds since the epoch."),
    ("badsum_last_run_success", "1 when the run succeeded on this host, 0 when it failed or did not reach it."),
    ("badsum_last_run_changes", "Changes the run made on the host (in check mode: would make)."),
    ("badsum_last_run_check_mode", "1 when the run was a check-mode run (nothing changed on the host), else 0."),
)
HELP = dict(FAMILIES)


class TextfileError(Exception):
    """The textfile directory cannot be used; the message says why and what to do."""


def printable(text: object) -> str:
    """Untrusted text (host names, interface names that are bytes) as valid, visible Unicode.

    Bytes that were not UTF-8 (surrogate-escaped) and control characters become
    the text \\xNN; a lone surrogate, \\uNNNN. The result encodes as UTF-8 and
    is allowed in XML 1.0.
    """
    out = []
    for ch in str(text):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            out.append(f"\\u{code:04x}")
        elif (code < 0x20 and ch not in "\t\n\r") or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)


def label_value(text: object) -> str:
    """A label value as the text format wants it: printable, then \\ " and newline escaped."""
    return printable(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _evidence(audit: dict) -> str:
    probed = audit.get("probe") or {}
    if probed.get("verdict") in ("vulnerable", "fixed"):
        return "probe-" + str(probed.get("kind") or "real")
    return "release-table"


def _count(value: object) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def series(
    phase: str, audit: Optional[dict], ok: bool, changes: int, timestamp: float, check_mode: bool = False
) -> List[Series]:
    """The host's samples: `audit` is the audit that describes the host now (None or {}: the run could not tell)."""
    audit = audit or {}
    risk = audit.get("risk") if audit.get("risk") in RISKS else UNKNOWN
    out: List[Series] = [("badsum_host_risk", (("class", c),), 1 if c == risk else 0) for c in (*RISKS, UNKNOWN)]
    if audit.get("vulnerable") in VULNERABLE:
        out += [("badsum_kernel_vulnerable", (("state", v),), 1 if v == audit["vulnerable"] else 0) for v in VULNERABLE]
    hazard = audit.get("vxlan") if isinstance(audit.get("vxlan"), dict) else {}
    vxlan_risk = hazard.get("risk") if hazard.get("risk") in VXLAN_RISKS else UNKNOWN
    out += [("badsum_host_vxlan_risk", (("class", c),), 1 if c == vxlan_risk else 0) for c in (*VXLAN_RISKS, UNKNOWN)]
    if isinstance(hazard.get("devices"), list):
        on = [
            d
            for d in hazard["devices"]
            if isinstance(d, dict) and d.get("affected") and d.get("tx_csum_generic") != "off"
        ]
        out.append(("badsum_vxlan_devices_tx_csum_on", (), len(on)))
    release = (audit.get("kernel") or {}).get("release")
    if release:
        out.append(("badsum_kernel_info", (("release", str(release)), ("evidence", _evidence(audit))), 1))
    for key in ("container_veths", "container_veths_rx_on"):
        if _count(audit.get(key)) is not None:
            out.append(("badsum_" + key, (), audit[key]))
    guard = audit.get("guard")
    if isinstance(guard, dict) and "running" in guard:
        out.append(("badsum_guard_up", (), 1 if guard["running"] else 0))
    remediation = audit.get("remediation")
    if isinstance(remediation, dict) and "recorded" in remediation:
        out.append(("badsum_remediation_recorded", (), 1 if remediation["recorded"] else 0))
    if isinstance(audit.get("seconds"), (int, float)):
        out.append(("badsum_audit_duration_seconds", (), audit["seconds"]))
    run = (("phase", phase),)
    out += [
        ("badsum_last_run_timestamp_seconds", run, timestamp),
        ("badsum_last_run_success", run, 1 if ok else 0),
        ("badsum_last_run_changes", run, changes),
        ("badsum_last_run_check_mode", run, 1 if check_mode else 0),
    ]
    return out


def exposition(samples: Iterable[Series]) -> str:
    """The text format: each family once, with its HELP and TYPE, its samples together, in FAMILIES order."""
    by_family: Dict[str, List[str]] = {}
    for name, labels, value in samples:
        if name not in HELP:
            raise ValueError(f"not a badsum metric: {name!r}")
        inner = ",".join(f'{k}="{label_value(v)}"' for k, v in labels)
        by_family.setdefault(name, []).append(
            f"{name}{{{inner}}} {number(value)}" if inner else f"{name} {number(value)}"
        )
    lines = []
    for name, text in FAMILIES:
        if name in by_family:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", *by_family[name]]
    return "\n".join(lines) + "\n"


def render(
    phase: str, audit: Optional[dict], ok: bool, changes: int, timestamp: float, check_mode: bool = False
) -> str:
    return exposition(series(phase, audit, ok, changes, timestamp, check_mode))


# -- on the host: the textfile ------------------------------------------------------------------


def _unsafe(st: os.stat_result, what: str, final: bool) -> Optional[str]:
    """Why root must not write there: someone but root could swap what we write, or where."""
    if not stat.S_ISDIR(st.st_mode):
        return f"{what} is not a directory"
    if st.st_uid != 0:
        return f"{what} is owned by uid {st.st_uid}, not root"
    sticky = bool(st.st_mode & stat.S_ISVTX) and not final  # /tmp-like parents: nobody can rename our entry
    if st.st_mode & stat.S_IWOTH and not sticky:
        return f"{what} is writable by every user (mode {stat.S_IMODE(st.st_mode):04o})"
    if st.st_mode & stat.S_IWGRP and st.st_gid != 0 and not sticky:
        return f"{what} is writable by group {st.st_gid} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def check_dir(path: str) -> str:
    """The directory, resolved, if root may write there; TextfileError says why not."""
    if not path.startswith("/"):
        raise TextfileError(f"{printable(path)}: not an absolute path")
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as exc:
        raise TextfileError(
            f"{printable(path)}: {exc.strerror}; create it where node_exporter's --collector.textfile.directory points"
        ) from None
    problem = _unsafe(st, printable(real), final=True)
    parent = os.path.dirname(real)
    while problem is None and parent != real:
        problem = _unsafe(os.stat(parent), printable(parent) + " (a parent)", final=False)
        real, parent = parent, os.path.dirname(parent)
    if problem:
        raise TextfileError(problem + ": it must be root's alone (root-owned, writable by root only)")
    return os.path.realpath(path)


def textfile_dir(value: str) -> str:
    """argparse type of --textfile-dir: checked when the options are read, before the host is touched."""
    if not value:
        return ""
    try:
        check_dir(value)
    except TextfileError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (badsum_fleet_textfile_dir)") from None
    return value


def write(directory: str, text: str) -> str:
    """DIR/badsum.prom, whole or not at all: a temporary file node_exporter ignores (not *.prom), fsync, rename.

    The directory is opened once and checked again through that descriptor;
    every name is then resolved in it, so a directory swapped after the check
    is never written into.
    """
    real = check_dir(directory)
    fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        problem = _unsafe(os.fstat(fd), printable(real), final=True)
        if problem:
            raise TextfileError(problem)
        prefix = "." + FILE + "."
        for name in os.listdir(fd):  # what a killed writer left (bounded: one name per killed run)
            if name.startswith(prefix) and name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - os.lstat(name, dir_fd=fd).st_mtime > STALE_TMP_SECONDS:
                        os.unlink(name, dir_fd=fd)
        tmp = f"{prefix}{os.getpid()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(tmp, flags, 0o644, dir_fd=fd)
        try:
            data = text.encode("utf-8")
            while data:
                data = data[os.write(out, data) :]
            os.fchmod(out, 0o644)  # whatever the umask: node_exporter runs as its own user
            os.fsync(out)
            os.close(out)
            out = -1
            os.rename(tmp, FILE, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            if out >= 0:
                os.close(out)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=fd)
            raise
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)
    return os.path.join(real, FILE)


def _state(phase: str, result: dict) -> Tuple[Optional[dict], int]:
    """The audit that describes the host after this call, and the changes it made."""
    if phase == "audit":
        return result, 0
    if phase == "remediate":
        return result.get("after"), len((result.get("apply") or {}).get("changes") or [])
    return result.get("after"), len(result.get("changes") or [])


def publish(args: argparse.Namespace, phase: str, result: dict) -> dict:
    """The call's result; with --textfile-dir (never in check mode), DIR/badsum.prom written and named in it.

    A textfile that cannot be written fails the call with the reason, and
    keeps everything else the call found (a remediation's record included).
    """
    directory = getattr(args, "textfile_dir", "")
    if not directory or getattr(args, "check", False) or result.get("skipped"):
        return result
    audit, changes = _state(phase, result)
    timestamp = round(time.time(), 3)
    try:
        path = write(directory, render(phase, audit, not result.get("failed"), changes, timestamp))
    except (OSError, TextfileError) as exc:
        why = f"the node_exporter textfile (--textfile-dir {printable(directory)}): {exc}"
        msg = "; ".join(m for m in (result.get("msg"), why) if m)
        return dict(result, failed=True, msg=msg, textfile={"error": why})
    result["textfile"] = {"path": path, "timestamp": timestamp}
    return result
