"""badsum-rx-off: a chained CNI plugin that turns rx-checksumming off on the pod's interface.

Installed by `remediate apply` as <cni bin dir>/badsum-rx-off (this file,
whole, with a shebang) and appended to the plugins of each .conflist. The
runtime calls it after the main plugin (bridge, ptp...) has made the pod's
veth, before any of the pod's containers start: the pod never receives a
packet with rx-checksumming on. The CNI `tuning` plugin cannot set offloads
(containernetworking/plugins#238), hence this one.

It stands alone (Python's standard library, nsenter and ethtool): it must not
depend on the host kit's path, because a CNI plugin that fails stops every
pod on the node from starting. Protocol: CNI spec 1.0 - the command in
CNI_COMMAND, the network configuration (with prevResult) on stdin; ADD
prints the result it was given.
"""

import json
import os
import subprocess
import sys

VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def fail(code: int, msg: str, details: str = "") -> None:
    print(json.dumps({"cniVersion": "1.0.0", "code": code, "msg": msg, "details": details}))
    sys.exit(1)


def rx_off(netns: str, ifname: str) -> None:
    proc = subprocess.run(
        ["nsenter", f"--net={netns}", "ethtool", "--features", ifname, "rx", "off"],
        capture_output=True,
        text=True,
        check=False,
    )
    # ethtool -K on a device whose rx is already off exits 0; anything else is a real failure
    if proc.returncode != 0:
        fail(11, f"badsum-rx-off: could not turn rx-checksumming off on {ifname}", proc.stderr.strip())


def main() -> None:
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        print(json.dumps({"cniVersion": "1.0.0", "supportedVersions": VERSIONS}))
        return
    try:
        conf = json.load(sys.stdin)
    except ValueError as exc:
        fail(6, "badsum-rx-off: the network configuration is not JSON", str(exc))
    if command == "ADD":
        netns, ifname = os.environ.get("CNI_NETNS", ""), os.environ.get("CNI_IFNAME", "")
        if not netns or not ifname:
            fail(4, "badsum-rx-off: CNI_NETNS and CNI_IFNAME are required for ADD")
        rx_off(netns, ifname)
        print(json.dumps(conf.get("prevResult") or {"cniVersion": conf.get("cniVersion", "1.0.0")}))
    elif command in ("DEL", "CHECK", "GC", "STATUS"):
        return  # nothing of its own to remove or check
    else:
        fail(4, f"badsum-rx-off: unknown CNI_COMMAND {command!r}")


if __name__ == "__main__":
    main()
