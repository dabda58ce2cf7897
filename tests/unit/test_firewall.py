"""The known state around a topology: the firewall and forwarding snapshot, and its exact restore."""

from __future__ import annotations

import json

import pytest

from badsum.host.experiment import firewall

SNAPSHOT = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
WITH_DOCKER = (
    SNAPSHOT.replace("FORWARD ACCEPT", "FORWARD DROP") + "*nat\n:DOCKER - [0:0]\n-A DOCKER -j RETURN\nCOMMIT\n"
)


def test_a_table_created_since_is_given_empty() -> None:
    text = firewall.full_restore_input(SNAPSHOT, WITH_DOCKER)
    assert text.startswith(SNAPSHOT)
    assert (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
        in text
    )
    assert "DOCKER" not in text


def test_nothing_is_added_when_no_table_appeared() -> None:
    assert firewall.full_restore_input(WITH_DOCKER, WITH_DOCKER) == WITH_DOCKER


class FakeHost:
    """iptables-save/-restore and sysctl, as a dictionary."""

    def __init__(self) -> None:
        self.rules = {"iptables": SNAPSHOT, "ip6tables": SNAPSHOT}
        self.sysctl = dict.fromkeys(firewall.SYSCTLS, "0")

    def sh(self, *cmd: str, stdin: str | None = None, **_):
        class Done:
            stdout = ""

        done = Done()
        if cmd[0].endswith("-save"):
            done.stdout = self.rules[cmd[0].removesuffix("-save")]
        elif cmd[0].endswith("-restore"):
            self.rules[cmd[0].removesuffix("-restore")] = stdin
        elif cmd[:2] == ("sysctl", "-n"):
            done.stdout = self.sysctl[cmd[2]] + "\n"
        elif cmd[:2] == ("sysctl", "-qw"):
            key, value = cmd[2].split("=")
            self.sysctl[key] = value
        return done


@pytest.fixture
def host(monkeypatch, tmp_path) -> FakeHost:
    fake = FakeHost()
    monkeypatch.setattr(firewall, "sh", fake.sh)
    monkeypatch.setattr(firewall, "STATE", tmp_path)
    return fake


def test_restore_puts_back_exactly_what_the_snapshot_found(host: FakeHost, tmp_path) -> None:
    assert firewall.snapshot("docker-nat") is True
    host.rules["iptables"] = WITH_DOCKER  # what dockerd did
    host.sysctl["net.ipv4.ip_forward"] = "1"
    assert firewall.restore("docker-nat") is True
    assert host.rules["iptables"].startswith(SNAPSHOT) and "DOCKER" not in host.rules["iptables"]
    assert host.sysctl["net.ipv4.ip_forward"] == "0"
    assert not list(tmp_path.iterdir()), "the snapshot is removed once restored"


def test_a_second_snapshot_keeps_the_first(host: FakeHost, tmp_path) -> None:
    firewall.snapshot("mesos")
    host.sysctl["net.ipv4.ip_forward"] = "1"
    assert firewall.snapshot("mesos") is False  # a re-run of the topology's up
    saved = json.loads((tmp_path / "snapshot-mesos.json").read_text())
    assert saved["sysctl"]["net.ipv4.ip_forward"] == "0"


def test_restore_without_a_snapshot_changes_nothing(host: FakeHost) -> None:
    host.sysctl["net.ipv4.ip_forward"] = "1"
    assert firewall.restore("kubernetes") is False
    assert host.sysctl["net.ipv4.ip_forward"] == "1"
