# SPDX-License-Identifier: GPL-2.0-only
"""badsum.kit.phases: how long each play (and the slowest tasks) took, as JSON, for the benchmarks."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: phases
type: aggregate
short_description: Write each play's and task's wall time to a JSON file
description:
  - For bench/reproduce.py. Enable it with
    ANSIBLE_CALLBACKS_ENABLED=badsum.kit.workers,badsum.kit.preload,badsum.kit.phases
    and name the file with BADSUM_PHASES_FILE. Plays are recorded start to end; a task
    from its first start to its last result on any host.
requirements:
  - BADSUM_PHASES_FILE in the environment
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "badsum.kit.phases"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("BADSUM_PHASES_FILE")
        self._start = time.time()
        self._plays: list[dict] = []
        self._tasks: dict[str, dict] = {}

    def _now(self) -> float:
        return round(time.time() - self._start, 3)

    def v2_playbook_on_play_start(self, play) -> None:
        if self._plays:
            self._plays[-1]["end"] = self._now()
        self._plays.append({"name": play.get_name(), "start": self._now(), "end": None})

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._tasks.setdefault(task.get_name(), {"start": self._now(), "end": self._now(), "count": 0})

    def _result(self, result, *args, **kwargs) -> None:
        entry = self._tasks.get(result._task.get_name())
        if entry:
            entry["end"] = self._now()
            entry["count"] += 1

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _result

    def v2_playbook_on_stats(self, stats) -> None:
        if self._plays:
            self._plays[-1]["end"] = self._now()
        if self._path:
            with open(self._path, "w") as f:
                json.dump({"total": self._now(), "plays": self._plays, "tasks": self._tasks}, f, indent=1)
