"""The control row: nc in host B's own network stack, no container and no veth on the path."""

from __future__ import annotations

OPTIONS = {"address": "host B's data IPv4 address"}
NEEDS = ("address",)


def up(o) -> dict:
    return {
        "changed": False,
        "path": "server in host B's own network stack, no veth on the path",
        "server_command": ["nc", "-l", "-p", str(o.port)],
        "target": o.address,
        "namespaces": {"host": "self"},
        "container_veths": [],
        "client_routes": [],
    }


def down(o) -> dict:
    return {"changed": False}
