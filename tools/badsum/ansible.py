"""One way to run Ansible from the controller: its environment, a playbook, a module, a watched playbook.

Every part of badsum that starts Ansible comes through here, so that each run
sees the same programs (the virtualenv's, beside this Python), the same
configuration (the checkout's ansible.cfg) and `-e` parsed as
ansible-playbook parses it:

- environment(): the process environment for Ansible, and for what runs
  Ansible's libraries (testinfra's ansible backend);
- playbook(): ansible-playbook as a subprocess (the workshop's runs, the
  real-kernel table);
- module(): one module on one host, ad hoc, its result as data;
- watched(): a playbook under ansible-runner, its events handed to the
  caller as they come (`badsum reproduce`, `badsum fleet`);
- parse_extra_vars(): `-e` values, with ansible-core's own parser.

One call to Ansible does not come here: roles/badsum_fleet's canary cell
runs playbooks/experiment.yml from inside a running play (see the comment
there for why it must inherit that play's environment instead).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from badsum import paths
from badsum.exitcodes import UsageError
from badsum.host.shared.common import alive

RUNNER_PREFIX = "badsum-runner-"
# The variable that ties an ansible-playbook to the badsum command that started it (tether()).
TETHER = "BADSUM_TETHER_PID"
ANSIBLE_LOCAL_TMP = Path("~/.ansible/tmp/badsum").expanduser()  # ansible.cfg's local_tmp
# The tasks that check settings and inventories before anything changes: a run they stop was refused.
CHECKS = frozenset(
    {"badsum.kit.validate", "badsum.kit.fleet_plan", "ansible.builtin.validate_argument_spec", "validate_argument_spec"}
)


@dataclass(frozen=True)
class Outcome:
    """A watched playbook's end: ansible-playbook's exit status and its failed tasks' events, in order.

    Read before ansible-runner's private directory goes (its events are files there).
    """

    rc: int
    failures: list[dict]


class ModuleError(RuntimeError):
    """A module call whose answer could not be read (the host never answered, Ansible itself failed)."""


def tether() -> dict[str, str]:
    """The environment that ties an ansible-playbook to this process: it gets SIGTERM when this one dies.

    badsum.kit.workers reads it. ansible-runner starts ansible-playbook in a
    session of its own that ignores SIGHUP: without the tie, a `badsum
    reproduce` killed with SIGKILL left its playbook running on the lab.
    """
    return {TETHER: str(os.getpid())}


def environment(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{paths.BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(paths.ANSIBLE_CFG),
        **extra,
    }


def playbook(
    name: str | Path,
    inventory: Path,
    extra_vars: dict | None = None,
    *,
    options: Sequence[str] = (),
    timeout: float,
    log: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook NAME (relative to the project) on INVENTORY; its output captured, or written to LOG."""
    argv = [str(paths.BIN / "ansible-playbook"), "-i", str(inventory), str(name)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    argv += list(options)
    run = dict(
        cwd=paths.PROJECT, env=environment(**tether()), text=True, timeout=timeout, check=False, preexec_fn=preexec_fn
    )
    if log is None:
        return subprocess.run(argv, capture_output=True, **run)
    with log.open("w") as out:
        return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **run)


def module(inventory: Path, host: str, name: str, args: dict, timeout: float = 120) -> dict:
    """One module on one host (`ansible HOST -m NAME -a ARGS`); the host's result (failed or not)."""
    proc = subprocess.run(
        [str(paths.BIN / "ansible"), "-i", str(inventory), host, "-m", name, "-a", json.dumps(args)],
        cwd=paths.PROJECT,
        env=environment(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host]
    except (ValueError, KeyError, IndexError):
        raise ModuleError((proc.stderr or proc.stdout).strip()[-300:]) from None


def watched(
    name: str, inventory: Path, extra_vars: dict, on_event: Callable[[dict], None], options: Sequence[str] = ()
) -> Outcome:
    """A playbook under ansible-runner, each event handed to on_event as it comes; how it ended.

    Its private directory is named after this process, so that a killed
    run's is found and removed (clean_stale_controller_files).
    """
    import ansible_runner  # heavy: only for the commands that watch a run

    clean_stale_controller_files()

    failures: list[dict] = []

    def handler(event: dict) -> bool:
        if event.get("event") == "runner_on_failed" and not event.get("event_data", {}).get("ignore_errors"):
            failures.append(event)
        on_event(event)
        return True

    with tempfile.TemporaryDirectory(prefix=f"{RUNNER_PREFIX}{os.getpid()}-") as private:
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(paths.PROJECT),
            playbook=name,
            inventory=str(inventory),
            extravars=extra_vars,
            cmdline=" ".join(options) or None,
            envvars={"ANSIBLE_CONFIG": str(paths.ANSIBLE_CFG), "PATH": environment()["PATH"], **tether()},
            event_handler=handler,
            quiet=True,
        )
        return Outcome(runner.rc, failures)


def first_failure(outcome: Outcome, name: str) -> str:
    """The first failed task's own message, for the summary."""
    for event in outcome.failures:
        data = event["event_data"]
        return f"{data.get('task', '?')}: {data.get('res', {}).get('msg', '')}".strip()
    return f"see the playbook's output (ansible-playbook {name})"


def refused(outcome: Outcome) -> bool:
    """Whether the run was stopped by a check of its settings or inventory (so nothing changed)."""
    for event in outcome.failures:
        data = event["event_data"]
        return bool({data.get("task_action"), data.get("resolved_action")} & CHECKS)
    return False


def parse_extra_vars(values: Sequence[str]) -> dict:
    """`-e` values as ansible-playbook reads them: KEY=VALUE lists with shell-like quoting, JSON or YAML,
    @FILE; repeatable, later ones win. ansible-core's own parser (ansible.utils.vars.load_extra_vars).

    Stricter in one way: a word that is no KEY=VALUE (`-e nonsense`) is refused
    where ansible-playbook would pass it on as a variable named _raw_params.
    """
    if not values:
        return {}
    from ansible import context
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.utils import vars as ansible_vars
    from ansible.utils.context_objects import CLIArgs

    saved = context.CLIARGS
    merged: dict = {}
    try:
        for value in values:
            # One at a time, to name the culprit; merged as ansible-playbook merges them (later wins).
            context.CLIARGS = CLIArgs({"extra_vars": (value,)})
            vars(ansible_vars.load_extra_vars).pop("extra_vars", None)  # it keeps the first answer
            try:
                data = ansible_vars.load_extra_vars(DataLoader())
            except AnsibleError as exc:
                reason = " ".join(str(exc).split())[:300]  # Ansible's message, on one line
                raise UsageError(f"-e {value!r}: {reason} (want KEY=VALUE ..., JSON or YAML, or @FILE)") from None
            if "_raw_params" in data:
                raise UsageError(
                    f"-e {value!r}: {data['_raw_params']!r} is not KEY=VALUE (want KEY=VALUE ..., JSON or YAML, "
                    "or @FILE)"
                )
            merged.update(json.loads(json.dumps(data, default=str)))  # plain types, as a JSON file would give
    finally:
        context.CLIARGS = saved
        vars(ansible_vars.load_extra_vars).pop("extra_vars", None)
    return merged


def stale_controller_files() -> list[Path]:
    """Scratch directories that killed runs left on the controller: their owner's PID is gone.

    ansible-runner's private directory (badsum-runner-<pid>-*) and Ansible's
    own local scratch directory (ansible-local-<pid><8 random characters>).
    """
    found = []
    for path in Path(tempfile.gettempdir()).glob(f"{RUNNER_PREFIX}*-*"):
        pid = path.name.removeprefix(RUNNER_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            found.append(path)
    for path in ANSIBLE_LOCAL_TMP.glob("ansible-local-*"):
        pid = path.name.removeprefix("ansible-local-")[:-8]
        if pid.isdigit() and not alive(int(pid)):
            found.append(path)
    return found


def clean_stale_controller_files() -> list[str]:
    removed = []
    for path in stale_controller_files():
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed
