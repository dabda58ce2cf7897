"""badsum.specs: the choices come from the roles' specs, and no badsum_* name is taken silently."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from badsum import settings, specs
from badsum.fleet import settings as fleet
from badsum.lab import inventory as lab_inventory
from badsum.lab.spec import LabSpec
from badsum.vm import inventory as vm_inventory
from badsum.vm.spec import VmLabSpec

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = yaml.safe_load((ROOT / "roles/badsum_experiment/defaults/main.yml").read_text())
RESOLVED = {k: v for k, v in EXPERIMENT.items() if "{{" not in str(v)} | {
    "badsum_experiment_capture": False,
    "badsum_experiment_results_dir": "/tmp/results",
}


def test_the_choices_are_the_specs() -> None:
    assert specs.choices("badsum_experiment_pattern") == ("random", "stuck-bit")
    assert specs.choices("badsum_experiment_conditions") == ("vulnerable", "workaround", "patched")
    assert specs.choices("badsum_fleet_guard") == ("auto", "daemon", "systemd", "none")
    assert specs.choices("badsum_corruption_stuck_bit") == tuple(range(8))
    assert specs.default("badsum_fleet_guard_interval") == 60
    with pytest.raises(KeyError, match="no choices"):
        specs.choices("badsum_experiment_rate")
    with pytest.raises(KeyError, match="no option"):
        specs.option("badsum_experiment_rat")


@pytest.fixture
def roles_with_a_new_pattern(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the roles whose experiment spec offers a pattern the code has never heard of."""
    shutil.copytree(ROOT / "roles", tmp_path / "roles")
    spec = tmp_path / "roles/badsum_experiment/meta/argument_specs.yml"
    spec.write_text(spec.read_text().replace("choices: [random, stuck-bit]", "choices: [stuck-bit, flip-all]"))
    guard = tmp_path / "roles/badsum_fleet/meta/argument_specs.yml"
    guard.write_text(guard.read_text().replace("choices: [auto, daemon, systemd, none]", "choices: [auto, cron]"))
    monkeypatch.setattr(specs, "roles_dir", lambda: tmp_path / "roles")
    for cached in (specs.role, specs.roles, specs.known):
        cached.cache_clear()
    yield
    for cached in (specs.role, specs.roles, specs.known):
        cached.cache_clear()


@pytest.mark.usefixtures("roles_with_a_new_pattern")
def test_the_settings_take_their_choices_from_the_specs_and_nowhere_else() -> None:
    assert settings.experiment_settings(RESOLVED | {"badsum_experiment_pattern": "flip-all"}).problems == []
    refused = settings.experiment_settings(RESOLVED | {"badsum_experiment_pattern": "random"}).problems
    assert refused == ["badsum_experiment_pattern='random': allowed: 'stuck-bit', 'flip-all'"]
    defaults = yaml.safe_load((ROOT / "roles/badsum_fleet/defaults/main.yml").read_text())
    values = defaults | {"badsum_fleet_results_dir": "/tmp/fleet", "badsum_fleet_guard": "daemon"}
    assert fleet.fleet_settings(values).problems == ["badsum_fleet_guard='daemon': allowed: 'auto', 'cron'"]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (
            "badsum_experiment_rat",
            "badsum_experiment_rat: not a variable badsum knows; did you mean badsum_experiment_rate? "
            "(see roles/badsum_experiment/defaults/main.yml)",
        ),
        ("badsum_experiment_topology", "did you mean badsum_experiment_topologies?"),
        ("badsum_fleet_batchs", "did you mean badsum_fleet_batches? (see roles/badsum_fleet/defaults/main.yml)"),
        ("badsum_lab_host", "did you mean badsum_lab_hosts? (see roles/badsum_lab/defaults/main.yml)"),
        ("badsum_corruption_stuckbit", "did you mean badsum_corruption_stuck_bit?"),
        ("badsum_data_ip4", "did you mean badsum_data_ipv4? (see docs/guide/real-hosts.md)"),
        ("badsum_verfy", "did you mean badsum_verify? (see site/reference/variables.html, after `make docs`)"),
        ("badsum_zzzzzzzz", "badsum_zzzzzzzz: not a variable badsum knows; see the roles' defaults/main.yml"),
    ],
)
def test_an_unknown_name_is_refused_with_the_closest_known_one(name: str, problem: str) -> None:
    (found,) = specs.unknown([name])
    assert found.startswith(f"{name}: not a variable badsum knows; ")
    assert problem in found


def test_known_names_and_other_peoples_variables_pass() -> None:
    names = ["badsum_experiment_rate", "badsum_lib_dir", "badsum_fleet_plan", "capture", "ansible_port", "badsumx"]
    assert specs.unknown(names) == []
    assert specs.unknown({"badsum_data_iface": "eth0", "badsum_data_ifac": "eth0"}, " (on host2)") == [
        "badsum_data_ifac (on host2): not a variable badsum knows; did you mean badsum_data_iface? "
        "(see docs/guide/real-hosts.md)"
    ]


def test_the_experiment_the_lab_and_the_fleet_refuse_an_unknown_name_the_same_way() -> None:
    expected = "badsum_experiment_rat: not a variable badsum knows; did you mean badsum_experiment_rate?"
    # the experiment's check, given every badsum_* name of the play (as badsum.kit.validate gives them)
    found = settings.experiment_settings(RESOLVED, names=[*RESOLVED, "badsum_experiment_rat"]).problems
    assert [p for p in found if p.startswith(expected)] == found and found
    # the workshop's (badsum.workshop.runs.plan_seat): the names are the settings it was given
    assert settings.experiment_settings(RESOLVED | {"badsum_lab_hots": 4}).problems == [
        "badsum_lab_hots: not a variable badsum knows; did you mean badsum_lab_hosts? "
        "(see roles/badsum_lab/defaults/main.yml)"
    ]
    defaults = yaml.safe_load((ROOT / "roles/badsum_fleet/defaults/main.yml").read_text())
    values = defaults | {"badsum_fleet_results_dir": "/tmp/fleet"}
    assert fleet.fleet_settings(values, names=[*values, "badsum_experiment_rat"]).problems[0].startswith(expected)


def variables_in(path: Path) -> set[str]:
    """The badsum_* variables a YAML file names: its keys, and the names in its Jinja expressions."""
    text = path.read_text()
    keys = set(re.findall(r"^\s*(badsum_\w+):", text, re.M))
    registered = set(re.findall(r"register: (badsum_\w+)", text))
    jinja = {
        name
        for expr in re.findall(r"{{(.*?)}}|{%(.*?)%}|(?:that|when):(.*)", text, re.S)
        for part in expr
        for name in re.findall(r"(?<![\w&*'\"/.-])(badsum_\w+)", part)
    }
    return {n for n in keys | registered | jinja if not n.endswith("_")}


def test_every_badsum_variable_the_kit_reads_or_writes_is_known() -> None:
    """Roles, playbooks, molecule, the sample inventories and presets: a new variable must be declared."""
    files = [
        p
        for folder in ("roles", "playbooks", "molecule", "inventories", "presets")
        for p in (ROOT / folder).rglob("*.yml")
        if "meta" not in p.parts
    ]
    assert len(files) > 50
    found = {n: p for p in files for n in variables_in(p)}
    role_names = set(specs.roles())
    unknown = {n: str(p.relative_to(ROOT)) for n, p in found.items() if n not in specs.known() and n not in role_names}
    assert unknown == {}
    assert {"badsum_pod_cidr", "badsum_experiment_rate", "badsum_verify", "badsum_common_facts"} <= set(found)


def test_the_labs_inventories_name_only_known_variables(tmp_path: Path) -> None:
    def names(data) -> set[str]:
        if isinstance(data, dict):
            return {k for k in data if str(k).startswith("badsum_")} | {n for v in data.values() for n in names(v)}
        return set()

    groups = {"badsum_lab"}  # a group of the lab's, not a variable
    embedded = lab_inventory.inventory_data(LabSpec("lab0", 4, 0), tmp_path)
    vm = vm_inventory.inventory_data(
        VmLabSpec("vm0", 4, 0), tmp_path, {"variant": "fixed", "release": "6.1", "has_fix": True}, "tcg", "systemd"
    )
    for data in (embedded, vm):
        assert names(data) - groups, "no badsum_* variable found: the walk is broken"
        assert specs.unknown(names(data) - groups) == []


def kit_choices(tool: str, action: str, option: str) -> tuple:
    import importlib

    from badsum.host import TOOLS

    parser = importlib.import_module(f"badsum.host.{TOOLS[tool].module}").build_parser()
    sub = parser._subparsers._group_actions[0].choices[action]
    (found,) = [a for a in sub._actions if f"--{option}" in a.option_strings]
    return tuple(found.choices)


# One value handed on through several interfaces: the experiment's setting, the role it passes it
# to, the host-kit tool that acts on it. Each declares its choices; none may drift from the others.
HANDED_ON = [
    (["badsum_experiment_pattern", "badsum_corruption_pattern"], ("corruptor", "arm", "pattern")),
    (
        ["badsum_experiment_backend", "badsum_corruption_backend", "badsum_common_backend"],
        ("corruptor", "arm", "backend"),
    ),
    (["badsum_experiment_corruption_hook", "badsum_corruption_hook"], ("corruptor", "arm", "hook")),
    (["badsum_experiment_kernel_fixed", "badsum_condition_kernel_fixed"], ("condition", "apply", "kernel-fixed")),
    (["badsum_experiment_conditions", "badsum_condition_name"], ("condition", "apply", "name")),
    (["badsum_fleet_guard"], ("remediate", "rollout", "guard")),
    (["badsum_workaround_rx"], ("offload", "set", "rx")),
]


@pytest.mark.parametrize(("names", "kit"), HANDED_ON, ids=[n[0] for n, _ in HANDED_ON])
def test_a_value_handed_on_has_the_same_choices_everywhere(names: list[str], kit: tuple[str, str, str]) -> None:
    expected = set(kit_choices(*kit))
    for name in names:
        assert set(specs.choices(name)) == expected, name
