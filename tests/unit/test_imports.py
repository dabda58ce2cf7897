"""The package's layering: no import circles, host code apart from the controller, the controller reaching
into the host kit only for its shared part. The contracts are pyproject.toml's ([tool.importlinter]);
import-linter checks them on the real import graph (grimp), imports inside functions included."""

from __future__ import annotations

import subprocess
import tomllib

from badsum import paths

CONTRACTS = tomllib.loads((paths.PROJECT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold() -> None:
    proc = subprocess.run(
        [str(paths.BIN / "lint-imports"), "--no-cache", "--config", str(paths.PROJECT / "pyproject.toml")],
        cwd=paths.PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in proc.stdout


def test_every_package_is_one_the_graph_sees() -> None:
    """A directory without __init__.py is a namespace package: grimp leaves it out of the graph, unchecked."""
    missing = [
        str(d.relative_to(paths.PROJECT))
        for d in (paths.PROJECT / "tools" / "badsum").rglob("*")
        if d.is_dir() and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]
    assert missing == []


def test_the_contracts_name_every_controller_module() -> None:
    """A new controller module that the contracts do not name would escape them."""
    top = {
        f"badsum.{p.stem}"
        for p in (paths.PROJECT / "tools" / "badsum").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    } - {"badsum.host"}
    by_name = {c["name"]: c for c in CONTRACTS}
    host_apart = next(c for n, c in by_name.items() if n.startswith("Host code"))
    assert set(host_apart["forbidden_modules"]) == top
    for contract in CONTRACTS:
        if contract["type"] == "forbidden" and contract["source_modules"] != ["badsum.host"]:
            assert set(contract["source_modules"]) | {"badsum.hostkit"} == top, contract["name"]
