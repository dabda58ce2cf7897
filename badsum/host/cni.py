"""CNI configuration: badsum-rx-off chained into every .conflist, and taken out again exactly.

Used by remediate.py. A runtime reads its network configuration from a
directory (/etc/cni/net.d) and finds the plugins in another (/opt/cni/bin);
both are the remediation's inputs. Only .conflist files can chain plugins: a
plain .conf is reported and left to the guard.
"""

from __future__ import annotations

import json
from pathlib import Path

from .common import HostError, atomic_write, package_data

PLUGIN = "badsum-rx-off"
SHEBANG = b"#!/usr/bin/python3 -I\n"


def plugin_source() -> bytes:
    return SHEBANG + package_data("cni_plugin.py")


def conflists(conf_dirs: list[str]) -> list[Path]:
    return sorted(p for d in conf_dirs for p in Path(d).glob("*.conflist") if p.is_file())


def plain_confs(conf_dirs: list[str]) -> list[Path]:
    return sorted(p for d in conf_dirs for p in Path(d).glob("*.conf") if p.is_file())


def chained(text: str) -> bool:
    return any(p.get("type") == PLUGIN for p in json.loads(text).get("plugins", []))


def with_plugin(text: str) -> str:
    conf = json.loads(text)
    plugins = conf.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise HostError("a .conflist without a plugins list")
    conf["plugins"] = [*plugins, {"type": PLUGIN}]
    return json.dumps(conf, indent=2) + "\n"


def status(conf_dirs: list[str], bin_dir: str) -> dict:
    plugin = Path(bin_dir) / PLUGIN
    lists = {}
    for path in conflists(conf_dirs):
        try:
            lists[str(path)] = chained(path.read_text())
        except (ValueError, OSError) as exc:
            lists[str(path)] = f"unreadable: {exc}"
    return {
        "conf_dirs": conf_dirs,
        "conflists": lists,
        "plain_confs": [str(p) for p in plain_confs(conf_dirs)],
        "plugin": str(plugin),
        "plugin_installed": plugin.is_file() and plugin.read_bytes() == plugin_source(),
    }


def plan_install(conf_dirs: list[str], bin_dir: str) -> list[dict]:
    """What installing the plugin would change: each item has path, before (None: absent) and after."""
    todo = []
    plugin = Path(bin_dir) / PLUGIN
    lists = [p for p in conflists(conf_dirs) if not chained(p.read_text())]
    if not lists:
        return []
    source = plugin_source()
    if not plugin.is_file() or plugin.read_bytes() != source:
        before = plugin.read_bytes().decode(errors="replace") if plugin.is_file() else None
        todo.append({"path": str(plugin), "before": before, "after": source.decode(), "mode": 0o755})
    for path in lists:
        text = path.read_text()
        todo.append({"path": str(path), "before": text, "after": with_plugin(text), "mode": 0o644})
    return todo


def apply(items: list[dict]) -> None:
    for item in items:
        if item["after"] is None:
            Path(item["path"]).unlink(missing_ok=True)
        else:
            atomic_write(Path(item["path"]), item["after"], item["mode"])


def plan_uninstall(conf_dirs: list[str], bin_dir: str) -> list[dict]:
    """badsum's entry out of every .conflist that has one (as it is now), then the plugin, once none names it."""
    todo = []
    for path in conflists(conf_dirs):
        text = path.read_text()
        try:
            conf = json.loads(text)
        except ValueError:
            continue
        plugins = conf.get("plugins")
        if isinstance(plugins, list) and any(isinstance(p, dict) and p.get("type") == PLUGIN for p in plugins):
            conf["plugins"] = [p for p in plugins if not (isinstance(p, dict) and p.get("type") == PLUGIN)]
            todo.append({"path": str(path), "before": text, "after": json.dumps(conf, indent=2) + "\n", "mode": 0o644})
    plugin = Path(bin_dir) / PLUGIN
    if plugin.is_file() and plugin.read_bytes().startswith(SHEBANG):
        todo.append({"path": str(plugin), "before": plugin.read_bytes().decode(errors="replace"), "after": None})
    return todo
