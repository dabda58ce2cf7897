#!/usr/bin/python
# SPDX-License-Identifier: GPL-2.0-only
"""Install the host kit the action plugin built on the controller: written only when it differs."""

from __future__ import annotations

DOCUMENTATION = r"""
module: install
short_description: Install badsum's host kit on the host
description:
  - The action plugin builds the host kit (the C(badsum.host) package as one
    reproducible zipapp) on the controller and passes it here; the module writes
    it to C(<badsum_lib_dir>/bin/badsum-host.pyz) when the file there differs, so a
    second run changes nothing.
options:
  path:
    description: Where the kit goes; set by the action plugin from C(badsum_lib_dir).
    type: path
    required: true
  content:
    description:
      - The kit, base64-encoded; set by the action plugin. Empty, the module only
        says whether the host needs it (C(needs_content)), so that a host that has
        this kit is not sent its ~0.8 MB again.
    type: str
    required: true
  sha256:
    description: The kit's SHA-256; set by the action plugin.
    type: str
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author: badsum
"""

EXAMPLES = r"""
- name: Install the host kit
  badsum.kit.install:
"""

RETURN = r"""
path:
  description: Where the kit is.
  type: str
  returned: always
sha256:
  description: Its SHA-256.
  type: str
  returned: always
"""

import base64  # noqa: E402 - DOCUMENTATION first, as in every Ansible module
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402


def install(params: dict) -> dict:
    path, wanted = params["path"], params["sha256"]
    try:
        with open(path, "rb") as f:
            present = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        present = None
    result = {"path": path, "sha256": wanted, "changed": present != wanted}
    if present == wanted or params.get("_ansible_check_mode"):
        return result
    if not params["content"]:
        return {**result, "changed": False, "needs_content": True}
    data = base64.b64decode(params["content"])
    if hashlib.sha256(data).hexdigest() != wanted:
        return {"failed": True, "msg": "the host kit arrived damaged (SHA-256 mismatch)"}
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    # Hosts sharing the directory (an embedded lab's) may install at once, each in a PID
    # namespace of its own: a PID alone does not make the temporary name this call's.
    tmp = f"{path}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    with open(tmp, "xb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.rename(tmp, path)  # hosts sharing the directory may install at once: each rename is whole
    return result


def main() -> None:
    params = json.loads(r"""<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>""")
    try:
        result = install(params)
    except OSError as exc:
        result = {"failed": True, "msg": f"could not install the host kit at {params.get('path')}: {exc}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
