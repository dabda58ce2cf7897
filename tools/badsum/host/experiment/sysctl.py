"""Set a sysctl for an experiment, and put back exactly what was there.

    sysctl show    --key KEY
    sysctl set     --key KEY --value VALUE    remembers the value it replaced (once)
    sysctl restore --key KEY                  puts that value back

The experiment's knob beyond the article: net.netfilter.nf_conntrack_checksum=0
lets corrupt segments through conntrack, so DNAT forwards them too.
"""

from __future__ import annotations

import argparse
import re

from ..shared.common import STATE, HostError, Parser, atomic_write, sh

KEY_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_*-]+)+$")


def _saved(key: str):
    return STATE / f"sysctl-{key}"


def current(key: str) -> str:
    if not KEY_RE.match(key):
        raise HostError(f"{key!r} is not a sysctl name")
    return sh("sysctl", "-n", key).stdout.strip()


def set_value(key: str, value: str) -> dict:
    before = current(key)
    if not _saved(key).exists():
        atomic_write(_saved(key), before)
    if before == value:
        return {"changed": False, "key": key, "value": value}
    sh("sysctl", "-qw", f"{key}={value}")
    return {"changed": True, "key": key, "value": value, "was": before}


def restore(key: str) -> dict:
    saved = _saved(key)
    if not saved.exists():
        return {"changed": False, "key": key}
    value = saved.read_text()
    changed = current(key) != value
    if changed:
        sh("sysctl", "-qw", f"{key}={value}")
    saved.unlink()
    return {"changed": changed, "key": key, "value": value}


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    for name in ("show", "set", "restore"):
        a = sub.add_parser(name)
        a.add_argument("--key", required=True)
        if name == "set":
            a.add_argument("--value", required=True)
    return p


def run(args: argparse.Namespace) -> dict:
    if args.action == "show":
        return {"key": args.key, "value": current(args.key)}
    if args.action == "set":
        return set_value(args.key, args.value)
    return restore(args.key)
