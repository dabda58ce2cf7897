"""On the client (host A): a route to the containers where the topology needs one."""

from __future__ import annotations

import pytest


def test_client_routes_the_containers_via_the_server(client, result: dict) -> None:
    if not result["client_routes"]:
        pytest.skip("no route needed: the target is the server's own address")
    routes = client.check_output("ip route show table all")
    for route in result["client_routes"]:
        assert f"{route['dst']} via {route['via']}" in routes
