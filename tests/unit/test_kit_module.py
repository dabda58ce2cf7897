"""The badsum.kit.run and .install modules, run the way Ansible runs them (JSON args in, JSON out)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from badsum import hostkit

MODULES = Path(__file__).parents[2] / "collections" / "ansible_collections" / "badsum" / "kit" / "plugins" / "modules"


def run_module(name: str, args: dict) -> dict:
    source = (MODULES / f"{name}.py").read_text()
    assert "<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>" in source  # a JSON-args module: Ansible substitutes this
    source = source.replace("<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>", json.dumps(args))
    proc = subprocess.run(
        ["/usr/bin/python3", "-"], input=source, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("lib") / "bin" / "badsum-host.pyz"
    hostkit.write(path)
    return str(path)


def test_a_tool_result_is_the_module_result(kit: str) -> None:
    got = run_module("run", {"kit": kit, "tool": "counters", "action": "read", "args": {"ns": ["host=self"]}})
    assert got["changed"] is False and "TcpInCsumErrors" in got["counters"]["host"]


def test_a_tool_failure_fails_the_task_with_the_tools_own_message(kit: str) -> None:
    got = run_module("run", {"kit": kit, "tool": "corruptor", "action": "arm", "args": {"iface": "lo"}})
    assert got["failed"] is True
    assert got["msg"].startswith("badsum-host corruptor: arm: the following arguments are required")


def test_check_mode_skips_what_would_change_the_host(kit: str) -> None:
    got = run_module(
        "run",
        {"kit": kit, "tool": "corruptor", "action": "disarm", "args": {"iface": "lo"}, "_ansible_check_mode": True},
    )
    assert got["skipped"] is True and "check mode" in got["msg"]


def test_a_missing_kit_says_how_to_install_it(tmp_path: Path) -> None:
    got = run_module("run", {"kit": str(tmp_path / "nope.pyz"), "tool": "facts", "action": "show"})
    assert got["failed"] is True and "badsum_common" in got["msg"]


def test_unknown_parameters_are_refused(kit: str) -> None:
    got = run_module("run", {"kit": kit, "tool": "facts", "action": "show", "colour": "blue"})
    assert got["failed"] is True and "colour" in got["msg"]


def test_options_become_flags() -> None:
    namespace: dict = {}
    source = (MODULES / "run.py").read_text().split("\ndef main", 1)[0]
    exec(compile(source, "run.py", "exec"), namespace)
    argv = namespace["to_argv"]({"stuck_bit": 5, "veth": ["a:b", "c:d"], "check": True, "probe": False, "x": None})
    assert argv == ["--stuck-bit", "5", "--veth", "a:b", "--veth", "c:d", "--check"]


def test_files_come_back_base64_when_asked(kit: str, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    out.mkdir()
    (out / "recv.json").write_text(json.dumps({"chunks": [], "bytes": 3}))
    (out / "recv.bin").write_bytes(b"abc")
    got = run_module(
        "run",
        {
            "kit": kit,
            "tool": "recorder",
            "action": "wait",
            "fetch_files": True,
            "args": {"out": str(out), "port": 5001, "timeout": 1},
        },
    )
    assert base64.b64decode(got["files"]["recv.bin"]) == b"abc"


def test_install_writes_once_and_then_changes_nothing(tmp_path: Path) -> None:
    data = hostkit.build()
    args = {
        "path": str(tmp_path / "lib" / "bin" / "badsum-host.pyz"),
        "content": base64.b64encode(data).decode(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert run_module("install", args)["changed"] is True
    assert Path(args["path"]).read_bytes() == data
    assert run_module("install", args)["changed"] is False


def test_install_asks_for_the_kit_only_when_the_host_lacks_this_one(tmp_path: Path) -> None:
    # The action plugin calls first without the kit's bytes: a host that has it is never sent them.
    data = hostkit.build()
    path = tmp_path / "badsum-host.pyz"
    ask = {"path": str(path), "content": "", "sha256": hashlib.sha256(data).hexdigest()}
    assert run_module("install", ask) == {**run_module("install", ask), "needs_content": True, "changed": False}
    assert not path.exists()
    run_module("install", {**ask, "content": base64.b64encode(data).decode()})
    answer = run_module("install", ask)
    assert answer["changed"] is False and "needs_content" not in answer
    path.write_bytes(b"an older kit")
    assert run_module("install", ask)["needs_content"] is True


def test_install_in_check_mode_changes_nothing(tmp_path: Path) -> None:
    data = b"kit"
    path = tmp_path / "badsum-host.pyz"
    args = {
        "path": str(path),
        "content": base64.b64encode(data).decode(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "_ansible_check_mode": True,
    }
    assert run_module("install", args)["changed"] is True and not path.exists()
