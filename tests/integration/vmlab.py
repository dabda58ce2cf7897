"""What the VM tests share: whether they can run, a VM lab for a module, and SSH into its guests."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from badsum.host.shared.common import alive
from badsum.lab import cgroups
from badsum.vm import boot, kernel, network, provider, rootfs
from badsum.vm.spec import VmLabSpec
from conftest import badsum


def _missing() -> str:
    try:
        missing = [f"the {v} kernel" for v in kernel.VARIANTS if kernel.record(v) is None]
        missing += [] if rootfs.record() else ["the guests' root filesystem"]
    except Exception as exc:  # e.g. linux-source-6.1 not installed: nothing can be built
        return str(exc)
    return f"{' and '.join(missing)} not built: run `make kernels` (13-19 min once on 2 cores)" if missing else ""


MISSING = _missing()
# `make test-vm` (the last step of `make test`) sets this, after `make kernels`: a bare
# `pytest tests/integration` does not boot VMs.
OPTED_IN = os.environ.get("BADSUM_TEST_VM") == "1"
MARKS = [
    pytest.mark.lab,
    pytest.mark.skipif(not OPTED_IN, reason="VM tests run with `make test-vm` (BADSUM_TEST_VM=1)"),
    pytest.mark.skipif(bool(MISSING), reason=MISSING or "built"),
]


def vm_lab(lab: str, variant: str, inventory: Path, init: str = "busybox") -> Iterator[dict]:
    """A fixture's body: the lab up (after whatever an earlier run left of it), its facts, then down."""
    badsum("lab", "down", "--lab", lab)
    started = time.monotonic()
    up = badsum(
        "lab",
        "up",
        "--provider",
        "qemu",
        "--kernel",
        variant,
        "--init",
        init,
        "--lab",
        lab,
        "--write-inventory",
        str(inventory),
        timeout=900,
        check=False,
    )
    if up.returncode != 0:
        badsum("lab", "down", "--lab", lab, timeout=120, check=False)
        pytest.fail(f"the {variant} VM lab ({init}) did not come up:\n{up.stderr[-3000:]}{up.stdout[-1000:]}")
    seconds = time.monotonic() - started
    yield {"variant": variant, "lab": lab, "inventory": inventory, "up": up.stdout, "up_seconds": seconds}
    badsum("lab", "down", "--lab", lab, timeout=120)


def address(info: dict, host: str) -> str:
    state = provider.store().load(info["lab"])
    assert state, f"lab {info['lab']} has no state"
    spec = VmLabSpec(info["lab"], state["hosts"], state["slot"])
    return (spec.switch if host == "switch" else spec.host(int(host.removeprefix("host")))).mgmt_v4


def ssh(
    info: dict, host: str, *command: str, check: bool = True, timeout: int = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        boot.ssh_argv(info["inventory"], address(info, host), *command),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def assert_down_leaves_nothing(info: dict) -> None:
    """`badsum lab down`, then: no QEMU, tap, bridge, cgroup, state or inventory of the lab is left."""
    lab = info["lab"]
    state = provider.store().load(lab)
    assert state
    spec = VmLabSpec(lab, state["hosts"], state["slot"])
    pids = [n["pid"] for n in state["nodes"].values()]
    badsum("lab", "down", "--lab", lab, timeout=120)
    # Gone or a zombie: QEMU's parent (`lab up`) has exited, so PID 1 reaps them when it gets to it.
    assert not [p for p in pids if alive(p)]
    assert network.lab_links(spec) == []
    assert cgroups.leftovers(lab) == []
    assert not spec.state_dir.exists()
    assert not (info["inventory"] / "hosts.yml").exists()
    assert not (info["inventory"] / ".ssh").exists()
