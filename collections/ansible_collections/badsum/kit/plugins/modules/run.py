#!/usr/bin/python
# SPDX-License-Identifier: GPL-2.0-only
"""Run one host-kit tool action on the host and return its JSON as the module's result.

Written against the standard library alone, as a JSON-args module: the kit
itself is standard-library only, and this module runs on every step of every
cell, where importing AnsibleModule would cost more than the step.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: run
short_description: Run one action of a badsum host-kit tool
description:
  - Runs C(TOOL ACTION --options) of badsum's host kit (the zipapp
    C(badsum-host.pyz), installed by M(badsum.kit.install)) in this module's own
    process and returns the tool's JSON object as the module's result.
  - C(changed) is what the tool says it changed; a tool's failure fails the task
    with the tool's own message.
  - The action plugin of the same name finds the kit through C(badsum_lib_dir) and,
    with O(save_to), keeps what the tool returns on the controller.
  - C(python3 badsum-host.pyz --help) lists the tools, C(... TOOL --help) their options.
options:
  tool:
    description: The tool, for example C(corruptor), C(topology), C(offload).
    type: str
    required: true
  action:
    description: The tool's action, for example C(arm), C(up), C(set).
    type: str
    required: true
  args:
    description:
      - The action's options. A key C(foo_bar) is passed as C(--foo-bar VALUE);
        a list repeats the option; C(true) passes the bare flag; C(false) and
        C(null) leave it out.
    type: dict
    default: {}
  argv:
    description: Arguments passed after C(--), for example the server command of C(recorder start).
    type: list
    elements: str
    default: []
  kit:
    description: Path of the host kit; set by the action plugin from C(badsum_lib_dir).
    type: path
    required: true
  fetch_files:
    description: Return the files the tool names (C(files)) base64-encoded; set by the action plugin.
    type: bool
    default: false
  ephemeral:
    description:
      - Bring the kit with the task instead of using the installed one, and remove it after, so that
        nothing is written on the host (a read-only audit, a check-mode run).
    type: bool
    default: false
  record:
    description:
      - Keep this host's record of a fleet run (C(badsum.fleet.records)) as
        C(RUN_DIR/hosts/HOST.json) on the controller, whatever the call's outcome. An
        unreachable host then fails the task (its record says unreachable) instead of
        being unreachable, so that a batch's C(max_fail_percentage) counts it.
    type: dict
    suboptions:
      run_dir:
        description: The fleet run's directory (C(badsum_fleet_plan.run_dir)).
        type: path
        required: true
      phase:
        description: The fleet playbook the record belongs to.
        type: str
        required: true
        choices: [audit, remediate, rollback]
  kit_content:
    description: With O(ephemeral), the kit itself, base64-encoded; set by the action plugin.
    type: str
  lib_dir:
    description: With O(ephemeral), where the installed kit would live (C(badsum_lib_dir)); set by the action plugin.
    type: path
  save_to:
    description: Controller directory where the action plugin writes the returned files.
    type: path
  save_as:
    description: With O(save_to), also write the tool's record there as C(<save_as>.json).
    type: str
attributes:
  check_mode:
    support: partial
    details: Read-only actions run; actions that can tell what they would change do so; others are skipped.
  diff_mode:
    support: partial
    details: Actions that can tell what they would change (C(remediate apply), C(rollback)) return a diff.
author: badsum
"""

EXAMPLES = r"""
- name: Arm the corruption window
  badsum.kit.run:
    tool: corruptor
    action: arm
    args:
      iface: p2
      hook: egress
      rate: 10

- name: Wait for the server, and keep its record and the bytes nc received
  badsum.kit.run:
    tool: recorder
    action: wait
    args: {out: /run/badsum/experiments/run1/bare-patched, timeout: 10}
    save_to: "{{ raw_dir }}"
    save_as: recv
"""

RETURN = r"""
changed:
  description: Whether the tool changed the host.
  type: bool
  returned: always
msg:
  description: On failure, the tool's own message.
  type: str
  returned: failed
files:
  description: Files the tool names, base64-encoded (only with fetch_files).
  type: dict
  returned: when the tool returns files
"""

import contextlib  # noqa: E402 - DOCUMENTATION first, as in every Ansible module
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

KNOWN = {"tool", "action", "args", "argv", "kit", "fetch_files", "kit_content", "lib_dir"}


def to_argv(options: dict) -> list[str]:
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def execute(params: dict) -> dict:
    unknown = sorted(k for k in params if k not in KNOWN and not k.startswith("_ansible"))
    if unknown:
        return {"failed": True, "msg": f"unsupported parameters: {', '.join(unknown)}"}
    if params.get("kit_content"):
        return _with_ephemeral_kit(params)
    kit = params.get("kit") or ""
    if not os.path.isfile(kit):
        return {
            "failed": True,
            "msg": f"the badsum host kit is not installed at {kit}: run the badsum_common role "
            "(playbooks/prepare.yml) on this host first",
        }
    sys.path.insert(0, kit)
    from badsum.host import HostError, call

    tool, action = params["tool"], params["action"]
    argv = [action, *to_argv(params.get("args") or {})]
    if params.get("argv"):
        argv += ["--", *map(str, params["argv"])]
    noise = io.StringIO()
    try:
        with contextlib.redirect_stdout(noise):
            result = call(tool, argv, check_mode=bool(params.get("_ansible_check_mode")))
    except HostError as exc:
        return {"failed": True, "changed": False, "msg": f"badsum-host {tool}: {exc}"}
    files = result.pop("files", None) or {}
    if params.get("fetch_files") and files:
        import base64

        result["files"] = {}
        for name, path in files.items():
            with open(path, "rb") as f:
                result["files"][name] = base64.b64encode(f.read()).decode()
    elif files:
        result["file_paths"] = files
    return result


def _with_ephemeral_kit(params: dict) -> dict:
    """Run from a private copy of the kit that is removed when the call ends (lazy imports need it till then)."""
    import base64
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix="badsum-kit-")
    try:
        kit = os.path.join(scratch, "badsum-host.pyz")
        with open(kit, "wb") as f:
            f.write(base64.b64decode(params.pop("kit_content")))
        # The kit finds its state (compiled programs, remediation records) beside the installed one.
        os.environ["BADSUM_LIB_DIR"] = params.pop("lib_dir")
        return execute({**params, "kit": kit})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    params = json.loads(r"""<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>""")
    try:
        result = execute(params)
    except Exception as exc:  # a bug, not a host problem: say so with the traceback
        import traceback

        result = {"failed": True, "msg": f"badsum host kit crashed: {exc!r}", "exception": traceback.format_exc()}
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
