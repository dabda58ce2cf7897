"""One value, one place: each role's defaults/main.yml and meta/argument_specs.yml agree, for every role.

The defaults are the one place a default lives; the specs carry type,
choices, elements, required and description only. `disagreements` names
every way the two can part: an option in one and not the other, a default
its type does not fit, a default outside its choices, a default restated
in a spec. Each role must have none, and a planted role must have each.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from badsum import specs

ROOT = Path(__file__).resolve().parents[2]
# Every role with tasks; a topology's own role is data only (its catalogue record, meta/topology.yml:
# the shared role badsum_topology has the tasks and the specs), and has neither.
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.name.startswith("badsum_") and (p / "tasks").is_dir())
RECORDS = sorted(p.name for p in (ROOT / "roles").iterdir() if p.name.startswith("badsum_") and p.name not in ROLES)
SPEC_KEYS = {"type", "choices", "elements", "required", "description"}
# A default's Python types for each spec type; a template ("{{ ... }}") is checked where it is rendered.
TYPES = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "raw": (object,),
}


def fits(value, kind: str) -> bool:
    # YAML's true is an int to Python: only a bool is a bool, and a bool is nothing else.
    return kind == "raw" or (isinstance(value, TYPES[kind]) and (isinstance(value, bool) == (kind == "bool")))


def disagreements(name: str) -> list[str]:
    """Every way the role's defaults and its specs disagree."""
    role = specs.role(name)
    found = []
    options = role.options()
    found += [f"{o}: a default no entry point takes" for o in sorted(set(role.defaults) - set(options))]
    # An option without a default (required, or left to the inventory) is still in the commented interface.
    text = (specs.roles_dir() / name / "defaults" / "main.yml").read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    found += [
        f"{o}: an option defaults/main.yml neither sets nor describes"
        for o in sorted(set(options) - set(role.defaults))
        if not o.startswith("__") and not re.search(rf"\b{o}\b", comments)
    ]
    for entry, entry_options in role.entry_points.items():
        for option, spec in entry_options.items():
            where = f"{option} ({entry})"
            if set(spec) - SPEC_KEYS:
                found.append(f"{where}: the spec has {sorted(set(spec) - SPEC_KEYS)}; a default lives in defaults")
            if spec.get("type") not in TYPES or not spec.get("description"):
                found.append(f"{where}: the spec needs a type and a description")
                continue
            value = role.defaults.get(option)
            if option not in role.defaults or (isinstance(value, str) and "{{" in value):
                continue
            items = value if isinstance(value, list) else []
            if not fits(value, spec["type"]) or not all(fits(v, spec.get("elements", "raw")) for v in items):
                found.append(f"{where}: the default {value!r} is no {spec['type']} of {spec.get('elements', 'any')}")
                continue
            for problem in ArgumentSpecValidator({option: spec}).validate({option: value}).error_messages:
                found.append(f"{where}: the default {value!r}: {problem}")
    return found


def test_every_role_is_checked() -> None:
    assert len(ROLES) >= 9
    for name in ROLES:
        assert (ROOT / "roles" / name / "meta" / "argument_specs.yml").is_file(), name
        assert (ROOT / "roles" / name / "defaults" / "main.yml").is_file(), name
    assert len(RECORDS) >= 5
    for name in RECORDS:  # a role without tasks is a topology's record, nothing else
        assert name.startswith("badsum_topology_"), name
        assert (ROOT / "roles" / name / "meta" / "topology.yml").is_file(), name
        assert not (ROOT / "roles" / name / "defaults").exists(), name


@pytest.mark.parametrize("name", ROLES)
def test_the_specs_and_the_defaults_agree(name: str) -> None:
    assert disagreements(name) == []


def test_each_disagreement_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A planted role with one of each: the check above finds them all."""
    role = tmp_path / "badsum_demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    options = {
        "badsum_demo_mode": {"type": "str", "choices": ["a", "b"], "description": "x"},
        "badsum_demo_rate": {"type": "int", "description": "x"},
        "badsum_demo_ports": {"type": "list", "elements": "int", "description": "x"},
        "badsum_demo_flag": {"type": "bool", "description": "x", "default": True},
        "badsum_demo_secret": {"type": "str", "description": "x"},
        "badsum_demo_told": {"type": "str", "required": True, "description": "x"},
    }
    (role / "meta" / "argument_specs.yml").write_text(
        yaml.safe_dump({"argument_specs": {"main": {"options": options}}})
    )
    (role / "defaults" / "main.yml").write_text(
        "# badsum_demo_told: what the caller passes\n"
        "badsum_demo_mode: c\nbadsum_demo_rate: 1.5\nbadsum_demo_ports: [x]\nbadsum_demo_flag: 1\n"
        "badsum_demo_extra: 1\nbadsum_demo_later: '{{ badsum_demo_rate }}'\n"
    )
    monkeypatch.setattr(specs, "roles_dir", lambda: tmp_path)
    specs.role.cache_clear()
    try:
        found = disagreements("badsum_demo")
    finally:
        specs.role.cache_clear()
    assert found == [
        "badsum_demo_extra: a default no entry point takes",
        "badsum_demo_later: a default no entry point takes",
        "badsum_demo_secret: an option defaults/main.yml neither sets nor describes",
        "badsum_demo_flag (main): the spec has ['default']; a default lives in defaults",
        "badsum_demo_flag (main): the default 1 is no bool of any",
        "badsum_demo_mode (main): the default 'c': value of badsum_demo_mode must be one of: a, b, got: c",
        "badsum_demo_ports (main): the default ['x'] is no list of int",
        "badsum_demo_rate (main): the default 1.5 is no int of any",
    ]


def test_every_role_checks_its_inputs_unless_a_comment_says_why_not() -> None:
    """rolespec_validate: false only where a spec cannot say a check done better elsewhere, and it says which."""
    unexplained = []
    for path in sorted([*(ROOT / "playbooks").rglob("*.yml"), *(ROOT / "roles").rglob("tasks/*.yml")]):
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if re.search(r"rolespec_validate:\s*false", line):
                comments = [s for s in lines[max(0, n - 4) : n] if s.lstrip().startswith("#")]
                if "#" not in line and not comments:
                    unexplained.append(f"{path.relative_to(ROOT)}:{n + 1}")
    assert unexplained == []
