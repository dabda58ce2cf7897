# SPDX-License-Identifier: GPL-2.0-only
"""badsum.kit.workers: Ansible's worker processes end with the ansible-playbook that forked them.

Ansible's workers call setsid(): a SIGKILL to the playbook's process group
(a terminal's Ctrl-C reaches the group too, a supervisor's kill often only
the group) leaves them running, orphaned, waiting on hosts that a teardown
may already have removed. The fault test found six of them alive after a
killed reproduce.yml. Here every process the playbook forks asks the kernel
to be killed when its parent dies (PR_SET_PDEATHSIG); a child whose parent
is already gone by then exits at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: workers
type: aggregate
short_description: Ansible's workers die with the ansible-playbook that forked them
description:
  - Enabled in badsum's ansible.cfg. Each process the ansible-playbook process forks
    (its workers) gets PR_SET_PDEATHSIG, so that killing ansible-playbook, however it
    is killed, leaves no worker behind. Linux only; elsewhere it does nothing.
"""

PR_SET_PDEATHSIG = 1


def _contain(parent: int, forker: int, prctl) -> None:
    if forker != parent:
        return  # a fork by a worker or deeper (the handlers are inherited): not ours to tie
    if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0 and os.getppid() != parent:
        os._exit(1)  # the parent died before the request was made: nothing will send the signal now


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
        parent = os.getpid()  # the callback is loaded in ansible-playbook itself, before any worker
        forking = {"pid": 0}

        def before() -> None:
            forking["pid"] = os.getpid()

        os.register_at_fork(before=before, after_in_child=lambda: _contain(parent, forking["pid"], prctl))
