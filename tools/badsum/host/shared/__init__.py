"""What every part of the host kit shares, and all the controller may import of it.

Errors and commands, the kernel's interfaces (netlink, setns, ethtool),
where the kit runs (the host's namespace, an emulated host's), the release
table, the framing of the experiment's messages, eBPF builds, the fleet's
metrics. Python 3.6, as the fleet's part is: both run on its hosts.
"""
