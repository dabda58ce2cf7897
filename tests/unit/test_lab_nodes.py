from __future__ import annotations

from pathlib import Path

from badsum.lab import kernel, nodes
from badsum.lab.networks import node_network
from badsum.lab.spec import LabSpec

# A hybrid machine with two labs' namespace files under /run, and a mount point with a space.
MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 27 254:0 /run/badsum/ns /run/badsum/ns rw,relatime - ext4 /dev/vda rw
43 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
44 42 0:4 net:[4026532301] /run/badsum/ns/lab0-h1.mnt rw - nsfs nsfs rw
45 43 0:4 net:[4026532300] /run/netns/lab0-h1 rw - nsfs nsfs rw
46 27 0:50 / /mnt/with\\040space ro,relatime - tmpfs none ro,size=4k
"""


def test_mountinfo_reads_points_types_and_escaped_names(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    found = nodes.mountinfo(str(tmp_path / "mountinfo"))
    assert found[0] == ("/proc", "proc", "rw")
    assert ("/mnt/with space", "tmpfs", "ro,size=4k") in found
    assert ("/run/badsum/ns/lab0-h1.mnt", "nsfs", "rw") in found


def test_the_cgroup_hierarchies_are_mounted_again_as_the_machine_has_them(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    mounts = nodes.cgroup_mounts(str(tmp_path / "mountinfo"))
    assert [m.target for m in mounts] == [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/freezer",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
    ]
    assert mounts[0] == nodes.Mount("tmpfs", "/sys/fs/cgroup", "tmpfs", 0, "mode=755")
    assert mounts[3].data == "name=systemd" and mounts[4] == nodes.Mount("cgroup2", "/sys/fs/cgroup/unified", "cgroup2")
    ro = MOUNTINFO.replace("rw,mode=755", "ro,mode=755")
    (tmp_path / "mountinfo").write_text(ro)
    assert nodes.cgroup_mounts(str(tmp_path / "mountinfo"))[0].flags == kernel.MS_RDONLY


def test_the_base_namespace_drops_run_and_sys_with_one_unmount_each(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    points = [p for p, _, _ in nodes.mountinfo(str(tmp_path / "mountinfo"))]
    assert nodes.topmost(points, nodes.DETACHED) == ["/run/badsum/ns", "/run/netns", "/sys"]
    # /run itself a mount (as with systemd): it alone goes, and everything below with it
    assert nodes.topmost(["/", "/run", "/run/lock", "/run/netns/x", "/running"], ("/run",)) == ["/run"]


def test_each_node_configures_its_own_side_of_the_network() -> None:
    spec = LabSpec("lab0", hosts=4, slot=2)
    batch, ports = node_network(spec, spec.host(3))
    assert ports == ("eth0",)
    assert "addr add 198.18.2.13/24 dev mgmt0" in batch and "addr add 198.19.2.13/24 dev eth0" in batch
    assert "nodad" in batch and batch.endswith("\n")
    batch, ports = node_network(spec, spec.switch)
    assert ports == ("p1", "p2", "p3", "p4")
    assert "link add br0 type bridge stp_state 0 forward_delay 0" in batch
    assert "link set p4 master br0 up" in batch and "dev eth0" not in batch


def test_a_sealed_node_covers_all_but_the_system_and_keeps_its_own_lab(tmp_path: Path) -> None:
    keep = Path("/var/lib/badsum/labs/st01")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    points = nodes.sealed_points(["usr", "etc", "work", "opt", "srv", "tmp", "var"], keep, (checkout, Path("/")))
    assert "/work" in points and "/opt" in points and "/srv" in points
    assert not {"/usr", "/etc", "/tmp", "/var", "/"} & set(points)  # the system stays; / is never covered
    assert str(checkout) in points  # the checkout, wherever it is
    assert nodes.sealed_points(["work"], keep, (Path("/work/badsum"),)).count("/work") == 1
