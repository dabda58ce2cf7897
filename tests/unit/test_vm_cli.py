"""`badsum lab` reaches the VM labs through the provider interface; `badsum kernel`, `reproduce-real`."""

from __future__ import annotations

from pathlib import Path

import pytest

from badsum import cli
from badsum.cli import kernel as kernel_cli
from badsum.cli import lab as lab_cli
from badsum.cli import reproduce as reproduce_cli
from badsum.exitcodes import Exit
from badsum.lab.interface import UpRequest

ASKED: list[tuple[str, str, object]] = []  # every provider's calls, in order


class Fake:
    """A provider that records what it was asked (the interface's shape)."""

    def __init__(self, name: str, takes: set[str], requires: set[str], labs: set[str]) -> None:
        self.name, self.takes, self.requires, self.mine = name, frozenset(takes), frozenset(requires), labs
        self.calls: list[tuple[str, object]] = []

    def _asked(self, what: str, arg: object) -> None:
        self.calls.append((what, arg))
        ASKED.append((self.name, what, arg))

    def owns(self, lab_id: str) -> bool:
        return lab_id in self.mine

    def labs(self) -> list[str]:
        return sorted(self.mine)

    def up(self, request: UpRequest) -> str:
        self._asked("up", request)
        return f"{self.name} up"

    def down(self, lab_id: str) -> str:
        self._asked("down", lab_id)
        return f"{self.name} down"

    def status(self, lab_id: str | None = None) -> list[dict]:
        self._asked("status", lab_id)
        return [{"lab_id": lab, "provider": self.name, "healthy": True} for lab in sorted(self.mine)]

    def inventory(self, lab_id: str) -> Path | None:
        return None


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Fake]:
    fakes = {
        "embedded": Fake("embedded", {"hosts", "remake", "slot", "user", "student", "limits"}, set(), {"lab0"}),
        "qemu": Fake("qemu", {"kernel", "init"}, {"kernel"}, {"vm1"}),
    }
    monkeypatch.setattr(lab_cli, "PROVIDERS", fakes)
    monkeypatch.setattr(lab_cli.embedded, "PROVIDER", fakes["embedded"])
    monkeypatch.setattr(lab_cli, "require_root", lambda what: None)
    monkeypatch.setattr(lab_cli.ansible, "clean_stale_controller_files", lambda: [])
    ASKED.clear()
    return fakes


@pytest.mark.parametrize(
    ("argv", "routed_to"),
    [
        (["lab", "up", "--provider", "qemu", "--kernel", "fixed", "--lab", "vm2"], "qemu"),
        (["lab", "up", "--lab", "vm1", "--kernel", "fixed"], "qemu"),  # the provider the id belongs to
        (["lab", "down", "--lab", "vm1"], "qemu"),
        (["lab", "status", "--lab", "vm1", "--json"], "qemu"),
        (["lab", "down", "--lab", "lab0"], "embedded"),
        (["lab", "up"], "embedded"),
        (["lab", "up", "--lab", "new1", "--hosts", "4"], "embedded"),
    ],
)
def test_a_lab_is_reached_through_its_provider(providers: dict[str, Fake], argv: list[str], routed_to: str) -> None:
    assert cli.main(argv) == Exit.OK
    assert [p for p, fake in providers.items() if fake.calls] == [routed_to]


def test_up_hands_the_provider_the_whole_request(providers: dict[str, Fake], tmp_path: Path) -> None:
    argv = ["lab", "up", "--provider", "qemu", "--kernel", "unfixed", "--init", "systemd", "--lab", "vm3"]
    assert cli.main([*argv, "--write-inventory", str(tmp_path)]) == Exit.OK
    (_, request), *_ = providers["qemu"].calls
    assert (request.lab_id, request.kernel, request.init, request.inventory) == ("vm3", "unfixed", "systemd", tmp_path)


def test_a_lab_of_one_provider_is_never_brought_up_by_another(
    providers: dict[str, Fake], capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(["lab", "up", "--provider", "embedded", "--lab", "vm1"]) == Exit.USAGE
    assert "--lab vm1: a qemu lab already" in capsys.readouterr().err
    assert not any(fake.calls for fake in providers.values())


def test_all_is_every_provider(providers: dict[str, Fake], capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["lab", "status", "--all", "--json"]) == Exit.OK
    assert '"vm1"' in capsys.readouterr().out
    assert cli.main(["lab", "down", "--all"]) == Exit.OK
    downs = [(name, lab) for name, what, lab in ASKED if what == "down"]
    assert downs == [("qemu", "vm1"), ("embedded", "lab0")]  # the VM labs first: theirs look like leftovers


def test_kernel_build_is_a_command() -> None:
    args = cli.build_parser().parse_args(["kernel", "build", "--variant", "fixed"])
    assert args.func is kernel_cli.cmd_build
    assert (args.variant, args.no_rootfs) == ("fixed", False)
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["kernel", "build", "--variant", "both"])
    assert exc.value.code == Exit.USAGE


def test_reproduce_with_real_kernels_is_reproduce_real(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[tuple] = []
    monkeypatch.setattr(reproduce_cli, "require_root", lambda what: None)
    monkeypatch.setattr(reproduce_cli.kernel, "record", lambda variant: {"release": variant})
    monkeypatch.setattr(reproduce_cli.real, "reproduce_real", lambda *a: seen.append(a) or Exit.OK)
    argv = ["reproduce", "--kernels", "real", "--results", str(tmp_path), "-e", "x=1 y='a b'"]
    assert cli.main(argv) == Exit.OK
    results, topologies, backend, compare, extra, as_json = seen[0]
    assert topologies == reproduce_cli.real.TOPOLOGIES and backend is None
    assert results == tmp_path and compare is None  # no emulated run yet: nothing to compare with
    assert extra == {"x": "1", "y": "a b"} and not as_json
    assert cli.main(["reproduce", "--kernels", "real", "-i", str(tmp_path)]) == Exit.USAGE
    assert len(seen) == 1
