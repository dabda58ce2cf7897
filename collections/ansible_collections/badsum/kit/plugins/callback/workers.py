# SPDX-License-Identifier: GPL-2.0-only
"""badsum.kit.workers: Ansible's worker processes end with the ansible-playbook that forked them.

Ansible's workers call setsid(): a SIGKILL to the playbook's process group
(a terminal's Ctrl-C reaches the group too, a supervisor's kill often only
the group) leaves them running, orphaned, waiting on hosts that a teardown
may already have removed. The fault test found six of them alive after a
killed reproduce.yml. Here every process the playbook forks asks the kernel
for a signal when its parent dies (PR_SET_PDEATHSIG); a child whose parent
is already gone by then exits at once.

The signal is SIGTERM, not SIGKILL: a worker's own handler for it (Ansible's
WorkerProcess._term) passes it to the worker's whole process group, so a
module's processes end with it - the testinfra suite a killed run was
verifying kept running after the teardown (CI). A worker still starting,
before that handler is set, has no module running and dies of the signal.

ansible-playbook itself ends with the badsum command that started it, when
that command asks (BADSUM_TETHER_PID, badsum.ansible): ansible-runner starts
it in a session of its own that ignores SIGHUP, so a killed `badsum
reproduce` left it running its tasks on a lab being torn down. Its SIGTERM
handler (TaskQueueManager's) passes the signal to the workers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

from ansible.plugins.callback import CallbackBase

from badsum.ansible import TETHER  # the controller's badsum package, next to Ansible

DOCUMENTATION = r"""
name: workers
type: aggregate
short_description: Ansible's workers die with the ansible-playbook that forked them
description:
  - Enabled in badsum's ansible.cfg. Each process the ansible-playbook process forks
    (its workers) gets PR_SET_PDEATHSIG with SIGTERM, so that killing ansible-playbook,
    however it is killed, leaves no worker behind, nor the processes of the module a
    worker was running (the worker's handler passes the signal to its process group).
    Linux only; elsewhere it does nothing.
"""

PR_SET_PDEATHSIG = 1


def _tie(starter: int, prctl) -> None:
    """End this process (SIGTERM) when `starter`, its parent, dies; at once if it already has."""
    if prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0 and os.getppid() != starter:
        os._exit(1)  # reparented before the request was made: nothing will send the signal now


def _contain(parent: int, forker: int, prctl) -> None:
    if forker == parent:  # a fork by a worker or deeper (the handlers are inherited) is not ours to tie
        _tie(parent, prctl)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "badsum.kit.workers"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        libc = ctypes.util.find_library("c")
        prctl = getattr(ctypes.CDLL(libc, use_errno=True), "prctl", None) if libc else None
        if prctl is None:
            return
        # Popped: a process this one starts (a module, a nested ansible-playbook) has another parent.
        tether = os.environ.pop(TETHER, "")
        if tether.isdigit():
            _tie(int(tether), prctl)
        parent = os.getpid()  # the callback is loaded in ansible-playbook itself, before any worker
        forking = {"pid": 0}

        def before() -> None:
            forking["pid"] = os.getpid()

        os.register_at_fork(before=before, after_in_child=lambda: _contain(parent, forking["pid"], prctl))
