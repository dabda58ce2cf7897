"""What badsum's action plugins share: where the host kit lives, and keeping evidence on the controller."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from badsum.files import atomic_write  # the controller's badsum package, next to Ansible

# The one inventory-wide setting of the kit, and its one default.
LIB_DIR_VAR = "badsum_lib_dir"
DEFAULT_LIB_DIR = "/var/lib/badsum"
KIT = "bin/badsum-host.pyz"


def target_vars(action, task_vars: dict) -> dict:
    """The variables of the host the task really runs on (the delegated one, with delegate_to)."""
    if action._task.delegate_to:
        return task_vars.get("ansible_delegated_vars", {}).get(action._task.delegate_to, task_vars)
    return task_vars


def lib_dir(action, task_vars: dict) -> str:
    value = target_vars(action, task_vars).get(LIB_DIR_VAR, task_vars.get(LIB_DIR_VAR, DEFAULT_LIB_DIR))
    return str(action._templar.template(value)).rstrip("/")


def kit_path(action, task_vars: dict) -> str:
    return f"{lib_dir(action, task_vars)}/{KIT}"


RESULT_KEYS = ("changed", "failed", "skipped", "msg", "invocation", "files")


def save_evidence(result: dict, save_to: str, save_as: str | None) -> dict:
    """Write the files a tool returned (base64) into save_to, and its record as <save_as>.json.

    The result keeps the records but not the files' bytes: a cell's streams
    never travel through Ansible's variables.
    """
    where = Path(save_to)
    saved = {}
    for name, blob in (result.pop("files", None) or {}).items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"the host kit returned a file with a bad name: {name!r}")
        data = base64.b64decode(blob)
        atomic_write(where / name, data)
        saved[name] = len(data)
    if save_as:
        record = {k: v for k, v in result.items() if k not in RESULT_KEYS and not k.startswith("_ansible")}
        atomic_write(where / f"{save_as}.json", json.dumps(record, indent=1).encode())
    result["saved"] = {"dir": str(where), "files": saved, "record": f"{save_as}.json" if save_as else None}
    return result
