"""The kernel's checksum-error and conntrack counters, read in several network namespaces.

    counters read --ns host=self --ns container=/proc/1234/ns/net

gives {"counters": {"host": {"TcpInCsumErrors": 0, ..., "ConntrackInvalid": 0}, ...}}.
Absolute values: the analyzer subtracts a reading taken before the experiment.
A namespace whose counters cannot be read fails the call: a missing reading
must never pass for a zero.
"""

from __future__ import annotations

import argparse
import json
import shutil

from ..shared.common import HostError, Parser, in_netns, sh

# What the verdicts use: every *CsumErrors counter, plus traffic volume for context.
KEPT = ("TcpInSegs", "TcpRetransSegs")


def read(netns: str) -> dict[str, int]:
    # -a absolute, -s leave nstat's history alone, -z include zeros
    out = sh(*in_netns(netns, "nstat", "-asz", "--json")).stdout
    try:
        kernel = json.loads(out)["kernel"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise HostError(f"nstat in {netns} printed something unexpected: {out[:200]!r}") from exc
    counters = {k: int(v) for k, v in kernel.items() if "CsumErr" in k or k in KEPT}
    if shutil.which("conntrack"):
        invalid = 0
        for line in sh(*in_netns(netns, "conntrack", "-S")).stdout.splitlines():
            for field in line.split():
                if field.startswith("invalid="):
                    invalid += int(field.split("=", 1)[1])
        counters["ConntrackInvalid"] = invalid
    return counters


def read_all(specs: list[str]) -> dict[str, dict[str, int]]:
    """LABEL=NETNS specs ("self" is the host's own namespace) -> counters by label."""
    out = {}
    for spec in specs:
        label, sep, netns = spec.partition("=")
        if not sep or not label or not netns:
            raise HostError(f"bad namespace {spec!r}: want LABEL=NETNS_PATH, e.g. host=self")
        out[label] = read(netns)
    return out


def add_ns_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ns",
        action="append",
        default=[],
        metavar="LABEL=NETNS",
        help="a namespace to read: label and path (self = the host's own); repeatable",
    )


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    add_ns_option(sub.add_parser("read", help="read the counters"))
    return p


def run(args: argparse.Namespace) -> dict:
    return {"counters": read_all(args.ns or ["host=self"])}
