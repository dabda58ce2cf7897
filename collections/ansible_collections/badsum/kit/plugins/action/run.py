# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.run: find the host kit, run it on the host, keep the evidence (or the fleet record) here.

Two transports, chosen per host by `badsum_fleet_transport`:

- `module` (the default): the badsum.kit.run module, as Ansible runs any
  module - which needs a Python on the host that ansible-core supports
  (3.8 and later for ansible-core 2.19);
- `raw`: no Ansible module at all, for the hosts that still have the bug -
  RHEL/CentOS 7-era machines with Python 3.6 - the way Ansible's `raw` and
  `script` reach a host: one shell command over the connection (with become
  as configured), the kit itself on its standard input, run by
  `badsum_fleet_python` (default /usr/bin/python3), one JSON answer back.
  The kit (badsum.host, its fleet path) keeps to Python 3.6.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.badsum.kit.plugins.modules.run import to_argv
from ansible_collections.badsum.kit.plugins.plugin_utils.kit import kit_path, lib_dir, save_evidence, target_vars

from badsum.fleet import PHASES

# Run on the host by its own python3, the kit (base64) on stdin: written to a
# private directory, run in this process, removed - as the module's ephemeral
# kit is. Short, so that it fits on a command line; standard library, Python 3.6.
BOOTSTRAP = (
    "import base64,json,os,shutil,sys,tempfile\n"
    "d=tempfile.mkdtemp(prefix='badsum-kit-')\n"
    "try:\n"
    " k=os.path.join(d,'badsum-host.pyz')\n"
    " with open(k,'wb') as f:f.write(base64.b64decode(sys.stdin.buffer.read()))\n"
    " a=json.loads(sys.argv[1]);os.environ['BADSUM_LIB_DIR']=a['lib_dir'];sys.path.insert(0,k)\n"
    " from badsum.host.__main__ import main\n"
    " r=main(a['argv'])\n"
    "finally:\n"
    " shutil.rmtree(d,ignore_errors=True)\n"
    "sys.exit(r)\n"
)

ARGS = {
    "tool": {"type": "str", "required": True},
    "action": {"type": "str", "required": True},
    "args": {"type": "dict", "default": {}},
    "argv": {"type": "list", "elements": "str", "default": []},
    "save_to": {"type": "path"},
    "save_as": {"type": "str"},
    "ephemeral": {"type": "bool", "default": False},
    "record": {
        "type": "dict",
        "options": {
            "run_dir": {"type": "path", "required": True},
            # Checked before the host call: a bad phase must not change a host whose record is then lost.
            "phase": {"type": "str", "required": True, "choices": list(PHASES)},
        },
    },
}


def fleet_setting(host_vars: dict, name: str):
    """A host's own transport or Python: its inventory's, the fleet role's, or (outside it) the role's default."""
    if name in host_vars:
        return host_vars[name]
    from badsum import specs  # the controller's badsum package, next to Ansible

    return specs.default(name)


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(ARGS)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGS)
        module_args = {
            "tool": args["tool"],
            "action": args["action"],
            "args": args["args"],
            "argv": args["argv"],
            "kit": kit_path(self, task_vars),
            "fetch_files": bool(args["save_to"]),
        }
        if args["ephemeral"]:
            # The kit travels with the module and is gone after it: a read-only
            # audit or a check-mode run leaves no file on the host.
            from badsum import hostkit  # the controller's badsum package, next to Ansible

            module_args["kit_content"] = hostkit.encoded()
            module_args["lib_dir"] = lib_dir(self, task_vars)
        transport = str(self._templar.template(fleet_setting(target_vars(self, task_vars), "badsum_fleet_transport")))
        if transport != "module":  # the common case needs no look-up
            from badsum import specs

            allowed = specs.choices("badsum_fleet_transport")
            if transport not in allowed:
                msg = f"badsum_fleet_transport={transport!r}: allowed: {', '.join(allowed)}"
                return {**result, "failed": True, "msg": msg}
        if transport == "raw" and (not args["ephemeral"] or args["save_to"]):
            msg = "badsum_fleet_transport=raw carries the kit with each call: only ephemeral calls without save_to"
            return {**result, "failed": True, "msg": msg}
        if args["record"] is None:
            result.update(self._call(module_args, task_vars, transport))
        else:
            result.update(self._call_and_record(module_args, task_vars, **args["record"], transport=transport))
        if args["save_to"] and not result.get("failed") and not result.get("skipped"):
            save_evidence(result, args["save_to"], args["save_as"])
        return result

    def _call_and_record(
        self, module_args: dict, task_vars: dict, run_dir: str, phase: str, transport: str = "module"
    ) -> dict:
        """The call, and this host's fleet record kept on the controller, whatever the call's outcome.

        Made here, in this host's own worker, as soon as its call returns: no
        later step has to read every host's variables back (a step per batch
        that cost ~20 ms a host, one host after the other). An unreachable host
        is a failed one, with a record that says so (Ansible's max_fail_percentage
        would not count it); so is a host where Ansible itself failed (a wrong
        become password, a transfer that broke), with Ansible's own message.
        """
        # The controller's badsum package, next to Ansible: its light modules only (this runs once a host).
        from badsum.fleet import records

        host = task_vars["inventory_hostname"]
        started = time.monotonic()
        try:
            result = self._call(module_args, task_vars, transport)
        except AnsibleConnectionFailure as exc:
            result = {"unreachable": True, "msg": str(exc)}
        except AnsibleError as exc:  # raised before the module could answer: the host failed, say why
            result = {"failed": True, "changed": False, "msg": str(exc)}
        error = f"{self._task.name}: {result.get('msg') or 'failed'}" if result.get("failed") else ""
        check_mode = bool(task_vars.get("ansible_check_mode"))
        rec = records.record(host, phase, result, error, check_mode, seconds=time.monotonic() - started)
        records.save(Path(run_dir), {host: rec})
        if result.pop("unreachable", False):
            return {**result, "failed": True, "changed": False, "msg": rec["error"]}
        return result

    def _call(self, module_args: dict, task_vars: dict, transport: str) -> dict:
        if transport == "module":
            return self._execute_module("badsum.kit.run", module_args=module_args, task_vars=task_vars)
        return self._run_raw(module_args, task_vars)

    def _run_raw(self, module_args: dict, task_vars: dict) -> dict:
        """The kit run by the host's own Python, with no Ansible module on the host (see the docstring)."""
        python = str(self._templar.template(fleet_setting(target_vars(self, task_vars), "badsum_fleet_python")))
        argv = [module_args["tool"], module_args["action"], *to_argv(module_args["args"])]
        if module_args["argv"]:
            argv += ["--", *module_args["argv"]]
        if self._task.check_mode:
            argv.insert(0, "--check-mode")
        call = json.dumps({"argv": argv, "lib_dir": module_args["lib_dir"]})
        cmd = " ".join(shlex.quote(word) for word in (python, "-I", "-c", BOOTSTRAP, call))
        res = self._low_level_execute_command(cmd, sudoable=True, in_data=module_args["kit_content"])
        out = res.get("stdout", "").strip()
        try:
            answer = json.loads(out.splitlines()[-1]) if out else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            why = (res.get("stderr") or out or "no output").strip()[-2000:]
            return {"failed": True, "changed": False, "rc": res.get("rc"), "msg": f"{python} on the host: {why}"}
        answer.setdefault("changed", False)
        if answer.get("failed") and not answer.get("msg", "").startswith("badsum-host"):
            answer["msg"] = f"badsum-host {module_args['tool']}: {answer.get('msg', '')}"
        return answer
