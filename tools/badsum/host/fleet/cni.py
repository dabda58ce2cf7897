"""CNI configuration: badsum-rx-off chained into each configuration list, and taken out again exactly.

Used by remediate.py and audit.py. A runtime reads its network configuration
from a directory (/etc/cni/net.d) and finds the plugins in another
(/opt/cni/bin); both are the inputs here.

Which files, read as the runtimes read them: libcni's ConfFiles takes every
entry of the directory that is not a directory and whose extension is .conf,
.conflist or .json (hidden files too), and containerd (go-cni
loadFromConfDir), CRI-O (ocicni loadNetworks) and the kubelet (dockershim
getDefaultCNINetwork) load a .conflist as a list of plugins and any other as
ONE plugin (libcni ConfFromFile, then ConfListFromConf): a .conf or .json
holding a "plugins" list is skipped or refused by all of them ("perhaps this is
a .conflist?"). So only a .conflist can chain badsum-rx-off; a .conf or .json
is reported and its pods are left to the guard.

Every change is text surgery: installing inserts badsum's entry into the
"plugins" array and changes no other byte (formatting, key order, CRLF, the
final newline); uninstalling needs no record: it finds badsum's entries by their
marker in whatever the file holds now and removes exactly them, so an edit made
in between survives, and install then uninstall gives the original bytes back.
The plugin binary goes last, and only when no configuration names it any more.
Writes keep the file's mode, owner and SELinux label, write a symlink's target
(the link stays), and are atomic (a temporary file that libcni does not load,
fsync, rename, fsync of the directory).

Plan items are dicts: path, before (None: absent), after (None: remove), mode,
kind ("plugin" or "conf"): remediate.py shows them as a diff in check mode.

Standard library only, Python 3.6 and later (fleet hosts are RHEL 7-era).
"""

# Longer than ~300 lines: install and uninstall are text surgery that must be exact inverses (bytes,
#   mode, line endings, symlinks kept); they are read side by side.

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path

from ..shared.common import HostError, package_data

PLUGIN = "badsum-rx-off"
# badsum's own entries carry this key; rollback removes the entries that have it, and only those.
MARKER_KEY = "badsum"
MARKER = "chained by badsum remediate; badsum rollback removes this entry"
LOG_KEY = "badsumLog"
LOG_DEFAULT = "/var/log/badsum-rx-off.jsonl"
# The plugin file says it is badsum's on this line; before it had one, it began with LEGACY_PLUGIN.
PLUGIN_MARKER = b"\n# badsum-cni-plugin-marker: badsum-rx-off"
LEGACY_PLUGIN = b'#!/usr/bin/python3 -I\n"""badsum-rx-off: a chained CNI plugin'
EXTENSIONS = (".conf", ".conflist", ".json")
LOG_READ_LIMIT = 1 << 16
WHITESPACE = " \t\n\r"


def plugin_source() -> bytes:
    return package_data("fleet/cni_plugin.py")


def is_badsum_plugin(data: "bytes | None") -> bool:
    return data is not None and (PLUGIN_MARKER in data[:1024] or data.startswith(LEGACY_PLUGIN))


def entry(log: str = LOG_DEFAULT) -> dict:
    """badsum's entry in a configuration list: the plugin, its marker, where it logs."""
    return {"type": PLUGIN, MARKER_KEY: MARKER, LOG_KEY: log}


def is_badsums(plugin: object) -> bool:
    """An entry badsum put there: with the marker, or as badsum wrote it before there was one."""
    return (
        isinstance(plugin, dict)
        and plugin.get("type") == PLUGIN
        and (MARKER_KEY in plugin or sorted(plugin) == ["type"])
    )


def conf_files(conf_dirs: "list[str]") -> "list[Path]":
    """The files a runtime would read, as libcni's ConfFiles lists them: per directory, in Go's sort order."""
    found, seen = [], set()
    for directory in conf_dirs:
        key = os.path.realpath(directory)
        if key in seen:
            continue
        seen.add(key)
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise HostError(f"cannot list the CNI configuration directory {directory}: {exc.strerror}") from None
        names = [e.name for e in entries if not e.is_dir(follow_symlinks=False)]
        found += [Path(directory) / n for n in sorted(names, key=os.fsencode) if os.path.splitext(n)[1] in EXTENSIONS]
    return found


def plugin_conf_files(conf_dirs: "list[str]") -> "list[Path]":
    """libcni 1.3 also loads a network's plugins from <dir>/<network name>/*.conf: every such file."""
    found = []
    for directory in conf_dirs:
        with contextlib.suppress(OSError):
            for sub in os.scandir(directory):
                if sub.is_dir(follow_symlinks=False):
                    found += sorted(Path(sub.path).glob("*.conf"))
    return found


def _read(path: Path) -> "str | None":
    """A file's text, byte for byte (surrogateescape, no newline translation); None when absent."""
    try:
        return path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i


def _value_end(text: str, i: int) -> int:
    return json.JSONDecoder().raw_decode(text, i)[1]


def _members(text: str, i: int) -> "list[tuple[str, int, int]]":
    """The members of the object at text[i]: (key, where the value starts, where it ends)."""
    found, i = [], _skip(text, i + 1)
    if text[i] == "}":
        return found
    while True:
        if text[i] != '"':
            raise ValueError(f"a key was expected at {i}")
        key, i = json.JSONDecoder().raw_decode(text, i)
        i = _skip(text, i)
        if text[i] != ":":
            raise ValueError(f"':' was expected at {i}")
        start = _skip(text, i + 1)
        end = _value_end(text, start)
        found.append((key, start, end))
        i = _skip(text, end)
        if text[i] == "}":
            return found
        if text[i] != ",":
            raise ValueError(f"',' was expected at {i}")
        i = _skip(text, i + 1)


def _elements(text: str, i: int) -> "list[tuple[int, int]]":
    """The elements of the array at text[i]: (start, end)."""
    found, i = [], _skip(text, i + 1)
    if text[i] == "]":
        return found
    while True:
        end = _value_end(text, i)
        found.append((i, end))
        i = _skip(text, end)
        if text[i] == "]":
            return found
        if text[i] != ",":
            raise ValueError(f"',' was expected at {i}")
        i = _skip(text, i + 1)


class ConfFile:
    """One configuration file as it is now: what a runtime makes of it, and where its plugins are in the text."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text
        self.data, self.error = None, ""
        try:
            self.data = json.loads(text)
            if not isinstance(self.data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.data, self.error = None, f"unreadable: {exc}"
        self.is_list = path.suffix == ".conflist"

    def plugins(self) -> "list | None":
        plugins = self.data.get("plugins") if self.data is not None else None
        return plugins if isinstance(plugins, list) else None

    def why_not(self) -> str:
        """Why badsum-rx-off cannot be chained here ("" when it can)."""
        if self.error:
            return self.error
        if not self.is_list:
            if self.plugins() is not None and "type" not in self.data:
                return "a plugins list in a .conf or .json file: runtimes refuse or skip it (not a .conflist)"
            return "a single plugin (.conf, .json): it cannot chain another"
        if not self.plugins():
            return "no plugins list (libcni 1.3 would load its plugins from a directory beside it)"
        return ""

    def chained(self) -> bool:
        return any(isinstance(p, dict) and p.get("type") == PLUGIN for p in self.plugins() or [])

    def names_plugin(self) -> bool:
        """Does a runtime reading this file run badsum-rx-off? When the file cannot be read: if it mentions it."""
        if self.data is None:
            return PLUGIN in self.text
        return self.data.get("type") == PLUGIN or self.chained()

    def _spans(self) -> "tuple[int, int, list[tuple[int, int]]]":
        """The plugins array (the last "plugins" key, as Go's encoding/json reads a duplicate): [ and ], elements."""
        start = _skip(self.text, 0)
        found = [m for m in _members(self.text, start) if m[0] == "plugins"]
        _key, begin, end = found[-1]
        return begin, end - 1, _elements(self.text, begin)

    def with_entry(self, log: str) -> str:
        """The text with badsum's entry appended to the plugins array, in the style of the element before it."""
        begin, _close, elements = self._spans()
        # What separates the last element from the comma (or the [) before it: newline and indentation, a space...
        before = _skip(self.text, elements[-2][1]) if len(elements) > 1 else begin
        gap = self.text[before + 1 : elements[-1][0]]
        end = elements[-1][1]
        text = self.text[:end] + "," + gap + json.dumps(entry(log)) + self.text[end:]
        expected = dict(self.data, plugins=[*self.plugins(), entry(log)])
        return _checked(self.path, text, expected)

    def without_entries(self) -> str:
        """The text with every entry badsum put in the plugins array taken out, and nothing else."""
        text, doc = self.text, self
        while True:
            marked = [i for i, p in enumerate(doc.plugins() or []) if is_badsums(p)]
            if not marked:
                break
            begin, close, elements = doc._spans()
            k = marked[-1]
            if k > 0:  # from the end of the element before it: the comma and gap that install put there
                cut = (elements[k - 1][1], elements[k][1])
            elif len(elements) > 1:
                cut = (elements[0][0], elements[1][0])
            else:
                cut = (begin + 1, close)
            text = text[: cut[0]] + text[cut[1] :]
            doc = ConfFile(self.path, text)
        expected = dict(self.data, plugins=[p for p in self.plugins() or [] if not is_badsums(p)])
        return _checked(self.path, text, expected)


def _checked(path: Path, text: str, expected: dict) -> str:
    """Never write a file we cannot vouch for: the edited text must read back as exactly the intended document."""
    try:
        ok = json.loads(text) == expected
    except ValueError:
        ok = False
    if not ok:
        raise HostError(f"{path}: editing its text would not give the intended configuration; left as it is")
    return text


def _files(conf_dirs: "list[str]") -> "list[ConfFile]":
    found, targets = [], set()
    for path in conf_files(conf_dirs):
        target = os.path.realpath(path)
        text = _read(path) if os.path.isfile(path) else None
        if text is None or target in targets:  # gone meanwhile, not a file, or a second link to the same file
            continue
        targets.add(target)
        found.append(ConfFile(path, text))
    return found


def _mode(path: Path, default: int) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return default


def status(conf_dirs: "list[str]", bin_dir: str) -> dict:
    """What the runtimes would run: each configuration list chained or not, and the plugin."""
    plugin = Path(bin_dir) / PLUGIN
    files = _files(conf_dirs)
    installed = plugin.read_bytes() if plugin.is_file() else None
    logs = sorted(
        {
            p.get(LOG_KEY) if isinstance(p.get(LOG_KEY), str) else LOG_DEFAULT
            for f in files
            for p in f.plugins() or []
            if isinstance(p, dict) and p.get("type") == PLUGIN
        }
    )
    return {
        "conf_dirs": conf_dirs,
        # .conflist files: True (chained), False (can be), or why it cannot be read
        "conflists": {str(f.path): f.chained() or f.why_not() or False for f in files if f.is_list},
        "plain_confs": [str(f.path) for f in files if not f.is_list],
        "files": [
            {
                "path": str(f.path),
                "loaded_as": "list" if f.is_list else "one plugin",
                "chained": f.chained(),
                "badsum_entries": sum(is_badsums(p) for p in f.plugins() or []),
                "why_not": f.why_not() if not f.chained() else "",
            }
            for f in files
        ],
        "plugin": str(plugin),
        "plugin_installed": installed == plugin_source(),
        "plugin_is_badsums": is_badsum_plugin(installed),
        "logs": logs,
    }


def plan_install(conf_dirs: "list[str]", bin_dir: str, log: str = LOG_DEFAULT) -> "list[dict]":
    """What chaining the plugin would change: the plugin first (it must exist before a list names it), then lists."""
    lists = [f for f in _files(conf_dirs) if f.is_list and not f.why_not() and not f.chained()]
    if not lists:
        return []
    todo = []
    plugin = Path(bin_dir) / PLUGIN
    installed = plugin.read_bytes() if plugin.exists() else None
    source = plugin_source()
    if installed != source:
        if installed is not None and not is_badsum_plugin(installed):
            raise HostError(f"{plugin} exists and is not badsum's: left as it is, nothing chained")
        before = installed.decode("utf-8", "surrogateescape") if installed is not None else None
        mode = _mode(plugin, 0o755)
        todo.append({"path": str(plugin), "before": before, "after": source.decode(), "mode": mode, "kind": "plugin"})
    for f in lists:
        mode = _mode(f.path, 0o644)
        todo.append({"path": str(f.path), "before": f.text, "after": f.with_entry(log), "mode": mode, **_conf(log)})
    return todo


def _conf(log: "str | None") -> dict:
    """What a configuration item does (chain, with the log path, or unchain), so apply can do it again on new text."""
    return {"kind": "conf", "op": "chain", "log": log} if log is not None else {"kind": "conf", "op": "unchain"}


def plan_uninstall(conf_dirs: "list[str]", bin_dir: str) -> "list[dict]":
    """What taking badsum out would change, found by its markers (no record needed): its entries out of every
    file, then the plugin, if it is badsum's and no configuration names it any more."""
    todo, named = [], False
    for f in _files(conf_dirs):
        after = f.without_entries() if any(is_badsums(p) for p in f.plugins() or []) else f.text
        if after != f.text:
            mode = _mode(f.path, 0o644)
            todo.append({"path": str(f.path), "before": f.text, "after": after, "mode": mode, **_conf(None)})
        named = named or ConfFile(f.path, after).names_plugin()
    named = named or any(_names(p) for p in plugin_conf_files(conf_dirs))
    plugin = Path(bin_dir) / PLUGIN
    installed = plugin.read_bytes() if plugin.is_file() else None
    if not named and is_badsum_plugin(installed):
        before = installed.decode("utf-8", "surrogateescape")
        todo.append(
            {
                "path": str(plugin),
                "before": before,
                "after": None,
                "mode": _mode(plugin, 0o755),
                "kind": "plugin",
                "conf_dirs": list(conf_dirs),
            }
        )
    return todo


def _names(path: Path) -> bool:
    text = _read(path)
    return text is not None and ConfFile(path, text).names_plugin()


def still_named(conf_dirs: "list[str]") -> "list[str]":
    """The files that make a runtime run badsum-rx-off (the plugin must stay while there is one)."""
    files = [f.path for f in _files(conf_dirs) if f.names_plugin()]
    return [str(p) for p in files + [p for p in plugin_conf_files(conf_dirs) if _names(p)]]


def apply(items: "list[dict]") -> "list[str]":
    """Carry a plan out, in its order; what was left alone, and why, is returned.

    A configuration changed since the plan was made is edited as it is now
    (the same insertion or removal), never overwritten with the plan's bytes.
    """
    left = []
    for item in items:
        try:
            left += _apply(item)
        except OSError as exc:
            raise HostError(f"{item['path']}: {exc.strerror or exc}") from None
    return left


def _apply(item: dict) -> "list[str]":
    path = Path(item["path"])
    if item.get("kind") == "conf":
        now = _read(path)
        if now is None:
            return [f"{path}: gone since the plan was made, left gone"]
        after = item["after"] if now == item["before"] else _redo(path, now, item)
        if after != now:
            write(path, _encode(after), item["mode"])
        return []
    installed = path.read_bytes() if path.exists() else None
    foreign = installed is not None and not is_badsum_plugin(installed)
    if item["after"] is not None:
        if foreign:  # the lists after this item would name someone else's program: stop here
            raise HostError(f"{path} appeared and is not badsum's: left as it is, nothing chained")
        write(path, _encode(item["after"]), item["mode"])
        return []
    if foreign:
        return [f"{path}: not badsum's (any more), left as it is"]
    named = still_named(item.get("conf_dirs", []))
    if named:
        return [f"{path}: still named by {', '.join(named)}, left in place"]
    if installed is not None:
        remove(path)
    return []


def _redo(path: Path, now: str, item: dict) -> str:
    f = ConfFile(path, now)
    if item["op"] == "chain":
        return f.with_entry(item["log"]) if not f.why_not() and not f.chained() else now
    return f.without_entries() if any(is_badsums(p) for p in f.plugins() or []) else now


def write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, through a symlink to its target (the link stays), keeping the mode, owner and
    SELinux label of the file it replaces (mode: for a new file)."""
    target = Path(os.path.realpath(path))
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    # A plugin directory the runtimes' configuration names may not exist yet (plugins elsewhere).
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    # Not .conf, .conflist or .json: a runtime listing the directory meanwhile does not load it.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".badsum-tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            if old is not None:
                os.fchown(out.fileno(), old.st_uid, old.st_gid)
                os.fchmod(out.fileno(), stat.S_IMODE(old.st_mode))
                with contextlib.suppress(OSError):
                    label = os.getxattr(str(target), "security.selinux")
                    os.setxattr(out.fileno(), "security.selinux", label)
            else:
                os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.rename(tmp, str(target))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_dir(target.parent)


def remove(path: Path) -> None:
    try:
        os.unlink(str(path))
    except FileNotFoundError:
        return
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_log(path: str, limit: int = 200) -> "list[dict]":
    """The plugin's latest records (its .1, then the log), at most `limit`: what the audit reports.

    Bounded like the plugin's own writes: at most 64 KiB of each file is read,
    never through a symlink; a line that is not a JSON object is skipped.
    """
    records = []
    for name in (path + ".1", path):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):
                continue
            raise HostError(f"cannot read the CNI plugin's log {name}: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            os.lseek(fd, max(0, size - LOG_READ_LIMIT), os.SEEK_SET)
            data = os.read(fd, LOG_READ_LIMIT)
        finally:
            os.close(fd)
        for line in data.decode("utf-8", "replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
    return records[-limit:]
