"""The fault catalogue: what stays on a production host, under every fault a host can throw at it. Root only.

Run under the machine-wide lock (flock /run/badsum-dev.lock): the CNI cases
make scratch network namespaces (cnichain.PREFIX), removed after each case and,
when a run was killed, by the next one.

BADSUM_CNI_PLUGIN=FILE runs the CNI cases against another plugin file (an
earlier badsum's, to see which cases it fails).
"""

import os
from pathlib import Path

import cnichain
import pytest

from badsum.host.fleet import cni


@pytest.fixture(scope="session")
def plugin_source() -> bytes:
    other = os.environ.get("BADSUM_CNI_PLUGIN")
    return Path(other).read_bytes() if other else cni.plugin_source()


@pytest.fixture
def bin_dir(tmp_path: Path, plugin_source: bytes) -> Path:
    return cnichain.bin_dir(tmp_path / "bin", plugin_source)


@pytest.fixture
def scratch():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and bind mounts")
    with cnichain.Namespaces() as ns:
        yield ns
