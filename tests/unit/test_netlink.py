"""The host kit's rtnetlink requests against the real kernel, checked with `ip` (iproute2's own view).

Each test runs its steps in a child process of its own network namespace
(`unshare --net`): whatever the steps make, the kernel removes with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root only: the steps make namespaces and links")


PRELUDE = """
import json, os, subprocess
from badsum.host.shared import netlink
from badsum.host.shared.common import HostError

def ip(*args):
    return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout)

out = {}
"""


def in_new_netns(script: str) -> dict:
    """Run the script (which sets `out`) in a new network namespace; its `out`, as JSON."""
    code = PRELUDE + textwrap.dedent(script) + "\nprint(json.dumps(out))\n"
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tools")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_veth_pair_is_made_addressed_brought_up_and_deleted() -> None:
    out = in_new_netns(
        """
        netlink.add_veth("nltest-a", "nltest-b", peer_mac=bytes.fromhex("02627300ab01"))
        netlink.add_ipv4("nltest-a", "198.18.254.1", 30)
        netlink.set_up("nltest-a")
        netlink.add_neighbor("nltest-a", "198.18.254.2", bytes.fromhex("02627300ab01"))
        out["links"] = {l["ifname"]: l for l in ip("-d", "link", "show", "type", "veth")}
        out["addr"] = ip("addr", "show", "dev", "nltest-a")[0]
        out["neigh"] = ip("neigh", "show", "dev", "nltest-a")
        try:
            netlink.add_veth("nltest-a", "nltest-c")
        except HostError as exc:
            out["again"] = str(exc)
        out["deleted"] = netlink.delete_link("nltest-a")
        out["deleted_again"] = netlink.delete_link("nltest-a")
        out["left"] = [l["ifname"] for l in ip("link", "show")]
        """
    )
    assert set(out["links"]) == {"nltest-a", "nltest-b"}
    assert out["links"]["nltest-a"]["linkinfo"]["info_kind"] == "veth"
    assert "UP" in out["links"]["nltest-a"]["flags"] and "UP" not in out["links"]["nltest-b"]["flags"]
    assert out["links"]["nltest-b"]["address"] == "02:62:73:00:ab:01"
    assert [(a["local"], a["prefixlen"]) for a in out["addr"]["addr_info"]] == [("198.18.254.1", 30)]
    assert [(n["dst"], n["lladdr"], n["state"]) for n in out["neigh"]] == [
        ("198.18.254.2", "02:62:73:00:ab:01", ["PERMANENT"])
    ]
    assert "File exists" in out["again"]
    assert (out["deleted"], out["deleted_again"]) == (True, False)
    assert out["left"] == ["lo"]  # deleting one end took its peer


def test_links_move_between_namespaces_both_ways() -> None:
    out = in_new_netns(
        """
        here = os.open(netlink.SELF, os.O_RDONLY)
        netlink.unshare_netns()
        there = os.open(netlink.SELF, os.O_RDONLY)
        netlink.setns(here)
        # made here with its peer there; then the other way: made here, moved there, peer stays
        netlink.add_veth("nltest-a", "nltest-b", peer_netns_fd=there)
        netlink.add_veth("nltest-c", "nltest-d")
        netlink.move_link("nltest-d", there)
        out["here"] = sorted(l["ifname"] for l in ip("link", "show", "type", "veth"))
        netlink.setns(there)
        out["there"] = sorted(l["ifname"] for l in ip("link", "show", "type", "veth"))
        """
    )
    assert out["here"] == ["nltest-a", "nltest-c"]
    assert out["there"] == ["nltest-b", "nltest-d"]
