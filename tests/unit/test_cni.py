"""CNI configuration handling (badsum.host.fleet.cni) and the plugin's parts that need no namespace.

Install and uninstall are text surgery: every test here compares bytes, not
parsed JSON. The plugin's awk JSON scanner (its fallback when python3 is
broken) is held to Python's json by hypothesis, for every awk on the machine.
The plugin against the real bridge plugin, with faults: tests/faults.
"""

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from badsum.host.fleet import cni, cni_plugin
from badsum.host.shared.common import HostError

ROOT = Path(__file__).resolve().parents[2]
OLD_PLUGIN = b'#!/usr/bin/python3 -I\n"""badsum-rx-off: a chained CNI plugin that turns rx-checksumming off.\n'
BRIDGE = {"type": "bridge", "bridge": "cbr0", "ipam": {"type": "host-local", "subnet": "198.18.250.0/24"}}
CONFLIST = {"cniVersion": "1.0.0", "name": "k8s", "plugins": [BRIDGE, {"type": "portmap"}]}


def dirs(tmp_path: Path) -> "tuple[Path, Path]":
    conf, bins = tmp_path / "net.d", tmp_path / "bin"
    conf.mkdir()
    bins.mkdir()
    return conf, bins


def install(conf: Path, bins: Path) -> None:
    cni.apply(cni.plan_install([str(conf)], str(bins)))


def uninstall(conf: Path, bins: Path) -> "list[str]":
    return cni.apply(cni.plan_uninstall([str(conf)], str(bins)))


def test_configuration_files_are_found_as_libcni_lists_them(tmp_path: Path) -> None:
    conf, _ = dirs(tmp_path)
    for name in ("20-b.conf", "30-c.json", "10-a.conflist", ".hidden.conflist", "x.conflist.bak", "README"):
        (conf / name).write_text("{}")
    (conf / "dir.conflist").mkdir()  # a directory is never a configuration
    (conf / "99-link.conflist").symlink_to(conf / "10-a.conflist")
    (conf / "Z.conf").write_text("{}")  # Go sorts bytes: upper case first
    found = [p.name for p in cni.conf_files([str(conf), str(conf), str(tmp_path / "missing")])]
    assert found == [".hidden.conflist", "10-a.conflist", "20-b.conf", "30-c.json", "99-link.conflist", "Z.conf"]


def test_only_a_conflist_chains_and_everything_else_is_reported_with_why(tmp_path: Path) -> None:
    conf, bins = dirs(tmp_path)
    (conf / "10-k8s.conflist").write_text(json.dumps(CONFLIST))
    (conf / "20-list-in-a.conf").write_text(json.dumps(CONFLIST))  # runtimes refuse or skip it
    (conf / "30-single.json").write_text(json.dumps({"cniVersion": "1.0.0", "name": "s", **BRIDGE}))
    (conf / "40-broken.conflist").write_text('{"plugins": [')
    (conf / "50-empty.conflist").write_text('{"name": "e", "plugins": []}')
    items = cni.plan_install([str(conf)], str(bins))
    assert [(Path(i["path"]).name, i["kind"]) for i in items] == [(cni.PLUGIN, "plugin"), ("10-k8s.conflist", "conf")]
    cni.apply(items)
    status = cni.status([str(conf)], str(bins))
    assert status["conflists"][str(conf / "10-k8s.conflist")] is True
    assert status["conflists"][str(conf / "40-broken.conflist")].startswith("unreadable")
    assert status["conflists"][str(conf / "50-empty.conflist")].startswith("no plugins list")
    assert status["plain_confs"] == [str(conf / "20-list-in-a.conf"), str(conf / "30-single.json")]
    why = {Path(f["path"]).name: f["why_not"] for f in status["files"]}
    assert "runtimes refuse or skip it" in why["20-list-in-a.conf"] and "single plugin" in why["30-single.json"]
    assert status["plugin_installed"] and status["plugin_is_badsums"] and status["logs"] == [cni.LOG_DEFAULT]
    assert os.stat(bins / cni.PLUGIN).st_mode & 0o777 == 0o755
    assert cni.plan_install([str(conf)], str(bins)) == []  # idempotent


FORMATS = {
    "indent 2, final newline": lambda d: json.dumps(d, indent=2) + "\n",
    "indent 4, no final newline": lambda d: json.dumps(d, indent=4),
    "tabs": lambda d: json.dumps(d, indent="\t") + "\n",
    "minified": lambda d: json.dumps(d, separators=(",", ":")),
    "one line with spaces": lambda d: json.dumps(d),
    "CRLF": lambda d: json.dumps(d, indent=2).replace("\n", "\r\n") + "\r\n",
    "keys in an odd order": lambda d: json.dumps({"plugins": d["plugins"], "name": d["name"], "cniVersion": "1.0.0"}),
    "one plugin": lambda d: json.dumps({**d, "plugins": [BRIDGE]}, indent=2),
    "space before commas": lambda d: json.dumps(d, indent=2).replace(",\n", " ,\n"),
    "a duplicate plugins key (Go reads the last)": lambda d: '{"plugins": [], ' + json.dumps(d)[1:],
}


@pytest.mark.parametrize("shape", FORMATS)
def test_install_inserts_one_entry_and_uninstall_gives_back_the_same_bytes(tmp_path: Path, shape: str) -> None:
    conf, bins = dirs(tmp_path)
    original = FORMATS[shape](CONFLIST).encode()
    path = conf / "10-k8s.conflist"
    path.write_bytes(original)
    install(conf, bins)
    chained = path.read_bytes()
    # Nothing but the entry and its separator came in, right after the last plugin.
    added = chained.decode()
    inserted = json.dumps(cni.entry())
    at = added.index(inserted)
    comma = added.rindex(",", 0, at)
    assert added[comma + 1 : at].strip(" \t\r\n") == ""  # a comma and whitespace
    assert added[:comma] + added[at + len(inserted) :] == original.decode()
    assert json.loads(chained)["plugins"][-1] == cni.entry()
    if b"\r\n" in original:
        assert chained.count(b"\r\n") == original.count(b"\r\n") + (1 if b"\r\n  " in original else 0)
        assert b"\n" not in chained.replace(b"\r\n", b"")
    uninstall(conf, bins)
    assert path.read_bytes() == original
    assert not (bins / cni.PLUGIN).exists()


def formatted(data: dict, indent: "int | None", compact: bool, crlf: bool, final: str) -> str:
    text = json.dumps(data, indent=indent, separators=(",", ":") if compact else None)
    return (text.replace("\n", "\r\n") if crlf else text) + final


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
plugin_confs = st.dictionaries(st.text(max_size=6), json_values, max_size=3).map(lambda d: {"type": "bridge", **d})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extra=st.dictionaries(st.sampled_from(["a", "ipMasq", "dns", "x"]), json_values, max_size=3),
    plugins=st.lists(plugin_confs, min_size=1, max_size=3),
    indent=st.sampled_from([None, 1, 2, 4]),
    compact=st.booleans(),
    crlf=st.booleans(),
    final=st.sampled_from(["", "\n", "\r\n", "\n\n"]),
)
def test_any_conflist_comes_back_byte_for_byte(tmp_path_factory, extra, plugins, indent, compact, crlf, final) -> None:
    conf, bins = dirs(tmp_path_factory.mktemp("c"))
    data = {"cniVersion": "1.0.0", "name": "n", **extra, "plugins": plugins}
    original = formatted(data, indent, compact, crlf, final).encode()
    (conf / "n.conflist").write_bytes(original)
    install(conf, bins)
    assert json.loads((conf / "n.conflist").read_bytes()) == {**data, "plugins": [*plugins, cni.entry()]}
    uninstall(conf, bins)
    assert (conf / "n.conflist").read_bytes() == original


def test_an_edit_made_after_install_survives_uninstall(tmp_path: Path) -> None:
    conf, bins = dirs(tmp_path)
    path = conf / "10-k8s.conflist"
    path.write_text(json.dumps(CONFLIST, indent=2) + "\n")
    install(conf, bins)
    # The operator adds a plugin after ours and changes the subnet, in their own style.
    edited = path.read_text().replace("198.18.250.0/24", "198.18.251.0/24")
    edited = edited.replace(json.dumps(cni.entry()), json.dumps(cni.entry()) + ',\n    {"type": "bandwidth"}')
    path.write_text(edited)
    items = cni.plan_uninstall([str(conf)], str(bins))
    assert [i["kind"] for i in items] == ["conf", "plugin"]  # the plugin goes last
    cni.apply(items)
    after = path.read_text()
    assert after == edited.replace(json.dumps(cni.entry()) + ",\n    ", "")
    assert [p["type"] for p in json.loads(after)["plugins"]] == ["bridge", "portmap", "bandwidth"]


def test_a_file_edited_between_plan_and_apply_is_edited_as_it_is_now(tmp_path: Path) -> None:
    conf, bins = dirs(tmp_path)
    path = conf / "10-k8s.conflist"
    path.write_text(json.dumps(CONFLIST, indent=2))
    install(conf, bins)
    items = cni.plan_uninstall([str(conf)], str(bins))
    path.write_text(path.read_text().replace('"cbr0"', '"cbr1"'))
    cni.apply(items)
    assert json.loads(path.read_text()) == {**CONFLIST, "plugins": [{**BRIDGE, "bridge": "cbr1"}, {"type": "portmap"}]}


def test_a_file_deleted_since_install_stays_deleted(tmp_path: Path) -> None:
    conf, bins = dirs(tmp_path)
    (conf / "10-k8s.conflist").write_text(json.dumps(CONFLIST))
    install(conf, bins)
    (conf / "10-k8s.conflist").unlink()
    items = cni.plan_uninstall([str(conf)], str(bins))
    assert [i["kind"] for i in items] == ["plugin"]
    cni.apply(items)
    assert sorted(os.listdir(conf)) == [] and not (bins / cni.PLUGIN).exists()


def test_writes_keep_mode_owner_and_symlinks_and_leave_no_file_a_runtime_would_load(
    tmp_path: Path, monkeypatch
) -> None:
    conf, bins = dirs(tmp_path)
    real = tmp_path / "managed"
    real.mkdir()
    target = real / "k8s.conflist"
    target.write_text(json.dumps(CONFLIST))
    os.chmod(target, 0o640)
    os.chown(target, 4321, 4322)
    (conf / "10-k8s.conflist").symlink_to(os.path.relpath(target, conf))
    renames = []
    rename = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: (renames.append((a, b)), rename(a, b)))
    install(conf, bins)
    for source, dest in renames:
        assert Path(source).parent == Path(dest).parent  # a rename within the directory: atomic
        assert os.path.splitext(source)[1] not in cni.EXTENSIONS  # libcni does not load the half-written file
    assert (conf / "10-k8s.conflist").is_symlink() and cni.PLUGIN in target.read_text()
    st_ = os.stat(target)
    assert (stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid) == (0o640, 4321, 4322)
    uninstall(conf, bins)
    st_ = os.stat(target)
    assert (stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid) == (0o640, 4321, 4322)
    assert (conf / "10-k8s.conflist").is_symlink() and target.read_text() == json.dumps(CONFLIST)
    assert sorted(os.listdir(real)) == ["k8s.conflist"] and sorted(os.listdir(conf)) == ["10-k8s.conflist"]


def test_the_plugin_stays_while_a_configuration_names_it_and_goes_only_if_it_is_badsums(tmp_path: Path) -> None:
    conf, bins = dirs(tmp_path)
    (conf / "10-k8s.conflist").write_text(json.dumps(CONFLIST))
    install(conf, bins)
    # The operator chained it themselves into another list (no marker): theirs, and it needs the binary.
    theirs = {**CONFLIST, "name": "other", "plugins": [BRIDGE, {"type": cni.PLUGIN, "badsumLog": "/var/log/x"}]}
    (conf / "20-other.conflist").write_text(json.dumps(theirs))
    items = cni.plan_uninstall([str(conf)], str(bins))
    assert [Path(i["path"]).name for i in items] == ["10-k8s.conflist"]
    assert cni.apply(items) == [] and (bins / cni.PLUGIN).exists()
    assert cni.still_named([str(conf)]) == [str(conf / "20-other.conflist")]
    (conf / "20-other.conflist").unlink()
    (conf / "k8s").mkdir()  # libcni 1.3: plugins of network "k8s" in a directory beside it
    (conf / "k8s" / "50-rx.conf").write_text(json.dumps({"type": cni.PLUGIN}))
    assert cni.plan_uninstall([str(conf)], str(bins)) == []
    shutil.rmtree(conf / "k8s")
    (bins / cni.PLUGIN).write_bytes(b"#!/bin/sh\necho someone else's\n")
    assert cni.plan_uninstall([str(conf)], str(bins)) == []  # not badsum's: never removed
    with pytest.raises(HostError, match="not badsum's"):
        cni.plan_install([str(conf)], str(bins))  # nor overwritten


def test_the_plugin_is_removed_at_apply_only_if_nothing_names_it_then(tmp_path: Path) -> None:
    conf, bins = dirs(tmp_path)
    (conf / "10-k8s.conflist").write_text(json.dumps(CONFLIST))
    install(conf, bins)
    items = cni.plan_uninstall([str(conf)], str(bins))
    # Between plan and apply, a .json appears that runs the plugin as its one plugin.
    (conf / "30-late.json").write_text(json.dumps({"cniVersion": "1.0.0", "name": "late", "type": cni.PLUGIN}))
    left = cni.apply(items)
    assert (bins / cni.PLUGIN).exists() and "still named by" in left[0] and "30-late.json" in left[0]
    assert cni.PLUGIN not in (conf / "10-k8s.conflist").read_text()


def test_what_an_earlier_badsum_installed_is_recognised_and_removed(tmp_path: Path) -> None:
    conf, bins = dirs(tmp_path)
    legacy = {**CONFLIST, "plugins": [BRIDGE, {"type": cni.PLUGIN}]}  # as badsum wrote it before markers
    (conf / "10-k8s.conflist").write_text(json.dumps(legacy, indent=2) + "\n")
    (bins / cni.PLUGIN).write_bytes(OLD_PLUGIN)
    assert cni.status([str(conf)], str(bins))["plugin_is_badsums"]
    cni.apply(cni.plan_uninstall([str(conf)], str(bins)))
    assert json.loads((conf / "10-k8s.conflist").read_text())["plugins"] == [BRIDGE]
    assert not (bins / cni.PLUGIN).exists()


def test_the_installed_plugin_is_this_file_and_carries_its_marker(tmp_path: Path) -> None:
    source = (ROOT / "tools/badsum/host/fleet/cni_plugin.py").read_bytes()
    assert cni.plugin_source() == source and cni.is_badsum_plugin(source)
    assert source.startswith(b"#!/bin/sh\n") and not cni.is_badsum_plugin(b"#!/bin/sh\n")


def test_the_log_is_read_bounded_and_never_through_a_symlink(tmp_path: Path) -> None:
    log = tmp_path / "rx.jsonl"
    (tmp_path / "rx.jsonl.1").write_text('{"outcome": "old"}\nnot json\n')
    log.write_text("x" * 200_000 + '\n{"outcome": "failed"}\n[1]\n')
    assert cni.read_log(str(log)) == [{"outcome": "old"}, {"outcome": "failed"}]
    log.unlink()
    log.symlink_to(tmp_path / "rx.jsonl.1")
    assert cni.read_log(str(log)) == [{"outcome": "old"}]


# The plugin's shell fallback: its awk scanner against Python's json.

SCAN = cni_plugin.WRAPPER.split("\nSCAN='", 1)[1].split("'", 1)[0]
# Debian's awk is mawk, RHEL's gawk, Alpine's busybox: every one this machine has.
AWKS = [
    [shutil.which(a[0]), *a[1:]]
    for a in (["mawk"], ["gawk"], ["busybox", "awk"], ["original-awk"])
    if shutil.which(a[0])
]


def scan(awk: "list[str]", text: bytes) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    return subprocess.run([*awk, SCAN], input=text, capture_output=True, env=env, timeout=10)


def expected_lines(conf: dict) -> "tuple[str, object, object]":
    """What the scanner must print: the log path (empty when unusable), the cniVersion, the ADD result."""
    log = conf.get("badsumLog")
    version = conf.get("cniVersion")
    return (
        log if cni_plugin.usable_path(log) else "",
        version if isinstance(version, str) else None,
        cni_plugin.result_of(conf),
    )


def escaped(text: str, rng) -> str:
    """A JSON string literal with some characters written as \\u escapes: the scanner must decode keys."""

    def unicode_escape(c: str) -> str:  # UTF-16 code units: a surrogate pair beyond the BMP
        units = c.encode("utf-16-be")
        return "".join(f"\\u{units[i] << 8 | units[i + 1]:04x}" for i in range(0, len(units), 2))

    return '"' + "".join(unicode_escape(c) if rng.random() < 0.3 else json.dumps(c)[1:-1] for c in text) + '"'


def dumps_randomly(value, rng) -> str:
    ws = lambda: rng.choice(["", " ", "\n", "\t", "\r\n  "])  # noqa: E731
    if isinstance(value, dict):
        members = [f"{ws()}{escaped(k, rng)}{ws()}:{ws()}{dumps_randomly(v, rng)}{ws()}" for k, v in value.items()]
        return "{" + ",".join(members) + ws() + "}"
    if isinstance(value, list):
        return "[" + ",".join(ws() + dumps_randomly(v, rng) + ws() for v in value) + ws() + "]"
    if isinstance(value, str):
        return escaped(value, rng) if rng.random() < 0.2 else json.dumps(value, ensure_ascii=rng.random() < 0.5)
    return json.dumps(value)


results = st.fixed_dictionaries(
    {"ips": st.lists(st.fixed_dictionaries({"address": st.text(max_size=12)}), max_size=2)},
    optional={"cniVersion": st.sampled_from(["0.4.0", "1.0.0"]), "dns": json_values, "interfaces": json_values},
)
requests = st.fixed_dictionaries(
    {"name": st.text(max_size=6), "type": st.just("badsum-rx-off")},
    optional={
        "cniVersion": st.sampled_from(["1.0.0", "1.1.0", "0.3.1"]) | json_values,
        "prevResult": results | json_values,
        "badsumLog": st.sampled_from(["/var/log/r.jsonl", "relative", "/tmp/é", "/x\ny"]) | st.text(max_size=5),
        "runtimeConfig": json_values,
        "x": json_values,
    },
)


@pytest.mark.parametrize("awk", AWKS, ids=lambda a: " ".join([Path(a[0]).name, *a[1:]]))
@settings(max_examples=120, deadline=None)
@given(conf=requests, rng=st.randoms(use_true_random=False))
def test_the_awk_scanner_reads_a_request_as_python_json_does(awk, conf, rng) -> None:
    text = dumps_randomly(conf, rng)
    assert json.loads(text) == conf
    out = scan(awk, text.encode())
    assert out.returncode == 0, out.stderr
    log, version, result = out.stdout.decode().split("\n", 2)
    want_log, want_version, want_result = expected_lines(conf)
    assert (log, json.loads(version) if version else None) == (want_log, want_version)
    assert json.loads(result) == want_result


def refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@pytest.mark.parametrize("awk", AWKS, ids=lambda a: " ".join([Path(a[0]).name, *a[1:]]))
@settings(max_examples=120, deadline=None)
@given(conf=requests, rng=st.randoms(use_true_random=False), data=st.data())
def test_the_awk_scanner_refuses_what_python_json_refuses(awk, conf, rng, data) -> None:
    text = dumps_randomly(conf, rng)
    cut = data.draw(st.integers(0, len(text) - 1))
    change = data.draw(st.sampled_from(["truncate", "replace", "insert"]))
    junk = data.draw(st.sampled_from([*'{}[],:"\\ x0-.eE\x01', "tru", "nul", "01", "1.", "\\u12"]))
    bad = {
        "truncate": text[:cut],
        "replace": text[:cut] + junk + text[cut + 1 :],
        "insert": text[:cut] + junk + text[cut:],
    }
    mutated = bad[change]
    try:
        # JSON has no NaN or Infinity literals (Python's json accepts them; a "NaN" string is fine)
        python = json.loads(mutated, parse_constant=refuse_constant)
        valid = isinstance(python, dict)
    except ValueError:
        valid = False
    out = scan(awk, mutated.encode())
    assert out.returncode == (0 if valid else 2), (mutated, out.stdout)
    if valid:
        assert json.loads(out.stdout.decode().split("\n", 2)[2]) == expected_lines(python)[2]


@pytest.mark.parametrize("awk", AWKS, ids=lambda a: " ".join([Path(a[0]).name, *a[1:]]))
@pytest.mark.parametrize(("text", "code"), [('{"name":"NaN","x":"Infinity"}', 0), ('{"name":"n","x":NaN}', 2)])
def test_nan_is_a_string_not_a_literal(awk, text: str, code: int) -> None:
    """JSON has no NaN literal, but "NaN" is a string like any other (hypothesis found the oracle confusing them)."""
    assert scan(awk, text.encode()).returncode == code


def test_the_python_part_runs_on_python_3_6(tmp_path: Path) -> None:
    """Fleet hosts that still have the bug are RHEL 7-era: their python3 is 3.6."""
    python36 = Path("/root/.pyenv/versions/3.6.15/bin/python3.6")
    if not python36.exists():
        pytest.skip("no Python 3.6 on this machine (pyenv 3.6.15)")
    conf = {"cniVersion": "1.0.0", "name": "n", "badsumLog": str(tmp_path / "l.jsonl"), "prevResult": {"ips": []}}
    plugin = ROOT / "tools/badsum/host/fleet/cni_plugin.py"
    out = subprocess.run(
        [str(python36), "-I", str(plugin), "tok"],
        input=json.dumps(conf).encode(),
        capture_output=True,
        env={"CNI_NETNS": str(tmp_path / "gone"), "CNI_IFNAME": "eth0"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().splitlines() == [json.dumps({"ips": [], "cniVersion": "1.0.0"}), "tok"]
    record = json.loads((tmp_path / "l.jsonl").read_text())
    assert record["outcome"] == "failed" and "cannot open the pod's network namespace" in record["reason"]
