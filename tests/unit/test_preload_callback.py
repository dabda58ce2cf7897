"""badsum.kit.preload: the host kit is built once, in ansible-playbook, and every forked worker has it."""

from __future__ import annotations

import configparser
import importlib.util
import os
from pathlib import Path

from badsum import hostkit

ROOT = Path(__file__).resolve().parents[2]
CALLBACK = ROOT / "collections/ansible_collections/badsum/kit/plugins/callback/preload.py"


def load_callback():
    spec = importlib.util.spec_from_file_location("badsum_preload_callback", CALLBACK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CallbackModule()


def test_a_worker_forked_after_the_playbook_started_does_not_build_the_kit_again() -> None:
    hostkit.encoded.cache_clear()
    load_callback().v2_playbook_on_start(None)
    assert hostkit.encoded.cache_info().currsize == 1
    pid = os.fork()
    if pid == 0:  # the worker: its call is a cache hit, nothing read, hashed or encoded
        misses = hostkit.encoded.cache_info().misses
        kit = hostkit.encoded()
        os._exit(0 if hostkit.encoded.cache_info().misses == misses and kit else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_ansible_cfg_enables_it_beside_the_workers_callback() -> None:
    """Without it in callbacks_enabled Ansible never calls it, and every worker builds the kit again."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "ansible.cfg")
    enabled = [name.strip() for name in cfg.get("defaults", "callbacks_enabled").split(",")]
    assert {"badsum.kit.preload", "badsum.kit.workers"} <= set(enabled)
