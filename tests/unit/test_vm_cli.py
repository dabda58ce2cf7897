from __future__ import annotations

import argparse

import pytest

from badsum import cli
from badsum.vm import cli as vm_cli


def test_lab_up_takes_the_provider_and_the_kernel() -> None:
    args = cli.build_parser().parse_args(["lab", "up", "--provider", "qemu", "--kernel", "unfixed", "--lab", "vm1"])
    assert (args.provider, args.kernel, args.lab) == ("qemu", "unfixed", "vm1")
    default = cli.build_parser().parse_args(["lab", "up"])
    assert (default.provider, default.kernel) == ("embedded", None)


def test_kernel_build_is_a_command() -> None:
    args = cli.build_parser().parse_args(["kernel", "build", "--variant", "fixed"])
    assert args.func is vm_cli.cmd_kernel
    assert (args.action, args.variant, args.no_rootfs) == ("build", "fixed", False)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["kernel", "build", "--variant", "both"])


@pytest.mark.parametrize(
    ("argv", "vm_labs", "routed_to"),
    [
        (["lab", "up", "--provider", "qemu", "--kernel", "fixed", "--lab", "vm1"], set(), "vm"),
        (["lab", "down", "--lab", "vm1"], {"vm1"}, "vm"),
        (["lab", "status", "--lab", "vm1"], {"vm1"}, "vm"),
        (["lab", "down", "--lab", "lab0"], {"vm1"}, "embedded"),
        (["lab", "up"], set(), "embedded"),
    ],
)
def test_a_vm_lab_is_found_by_its_id(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], vm_labs: set[str], routed_to: str
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(vm_cli.provider, "is_vm_lab", lambda lab_id: lab_id in vm_labs)
    monkeypatch.setattr(vm_cli, "cmd_vm_lab", lambda args: calls.append("vm") or 0)
    monkeypatch.setattr(cli, "cmd_lab", lambda args: calls.append("embedded") or 0)
    args = cli.build_parser().parse_args(argv)
    assert args.func(args) == 0
    assert calls == [routed_to]


@pytest.mark.parametrize("flag", [["--kernel", "unfixed"], ["--init", "systemd"]])
def test_vm_only_options_are_refused_for_an_embedded_lab(monkeypatch: pytest.MonkeyPatch, flag: list[str]) -> None:
    monkeypatch.setattr(vm_cli.provider, "is_vm_lab", lambda lab_id: False)
    monkeypatch.setattr(cli, "cmd_lab", lambda args: pytest.fail("an embedded lab was brought up"))
    args = cli.build_parser().parse_args(["lab", "up", *flag])
    with pytest.raises(ValueError, match=f"{flag[0]} {flag[1]}: only for VM labs"):
        args.func(args)
    assert cli.build_parser().parse_args(["lab", "up", "--provider", "qemu", *flag]).provider == "qemu"


def test_qemu_lab_up_needs_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm_cli, "require_root", lambda what: None)
    args = argparse.Namespace(action="up", kernel=None, lab="vm1", inventory=None, all=False)
    with pytest.raises(ValueError, match="--kernel fixed\\|unfixed"):
        vm_cli.cmd_vm_lab(args)


def test_reproduce_with_real_kernels_is_reproduce_real(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(vm_cli, "cmd_reproduce_real", lambda ns: seen.append(ns) or 0)
    (tmp_path / "reproduce.yml").write_text("---\n")
    args = cli.build_parser().parse_args(["reproduce", "--kernels", "real", "--project", str(tmp_path), "-e", "x=1"])
    assert args.func(args) == 0
    assert seen[0].extra_vars == ["x=1"] and seen[0].no_compare  # no emulated run yet: nothing to compare with
    assert seen[0].results_dir == str(tmp_path / "results")
    bad = cli.build_parser().parse_args(["reproduce", "--kernels", "real", "--project", str(tmp_path), "--json"])
    with pytest.raises(ValueError, match="no --inventory or --json"):
        bad.func(bad)
