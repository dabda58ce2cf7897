"""The files baked into the guest root filesystem: its two inits, boot script and sshd settings.

One image, two ways to boot it, chosen per lab on the kernel command line:

    busybox  (default) busybox init, the boot script, sshd - nothing else.
             Fast under TCG; the host kit starts its daemons directly, as on
             the embedded lab.
    systemd  Debian's systemd as PID 1, the boot script as a unit before
             ssh.service: what a production host runs, so the kit's systemd
             paths (the fleet guard's unit, dockerd as a transient unit) run
             for real. The services Debian enables that a lab must not run
             are masked: the system dockerd (it would take 172.17.0.0/16),
             containerd, apt's timers (no route to a mirror), gettys, firstboot.

Everything that differs between guests (hostname, addresses, SSH keys) comes
from QEMU's fw_cfg at boot, so every guest of every lab boots the same
read-only image.
"""

from __future__ import annotations

import shlex

FW_CFG_PREFIX = "opt/badsum"
# fw_cfg items the controller passes (name -> what it holds)
FW_CFG_ITEMS = ("env", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "authorized_keys")
INIT = "/usr/local/lib/badsum/init"  # a symlink to busybox: named `init`, it runs busybox's init applet
# The kernel's init= and what else each init needs on the command line.
DEFAULT_INIT = "busybox"
INITS = {
    "busybox": (f"init={INIT}",),
    # Kernel names (eth0, not enp0s3): the boot unit names the NICs by MAC itself.
    "systemd": ("init=/lib/systemd/systemd", "net.ifnames=0", "systemd.show_status=false"),
}

INITTAB = """\
::sysinit:/usr/local/sbin/badsum-mounts
::sysinit:/usr/local/sbin/badsum-boot
::respawn:/usr/sbin/sshd -D -e
::ctrlaltdel:/bin/busybox poweroff -f
::shutdown:/bin/sync
"""

# What systemd mounts itself: run first by busybox init only.
MOUNTS = r"""#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts -o gid=5,mode=620,ptmxmode=000
mount -t tmpfs tmpfs /dev/shm -o mode=1777,nosuid,nodev
mount -t tmpfs tmpfs /run -o mode=755,nosuid,nodev
mkdir -p /run/sshd /run/lock
mount -t tmpfs tmpfs /tmp -o mode=1777,nosuid,nodev
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null

# cgroup v1 hierarchies, one per controller, plus the v2 one beside them:
# the layout of the lab machine itself (hybrid), which dockerd and the kit know.
# (Under systemd the guest has systemd's own: cgroup v2 alone, as on current distributions.)
mount -t tmpfs cgroup /sys/fs/cgroup -o mode=755,nosuid,nodev,noexec
for c in cpuset cpu cpuacct blkio memory devices freezer net_cls perf_event pids; do
    mkdir -p /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
# Shared propagation everywhere, as systemd sets it on every real host. On a
# private / dockerd bind-mounts its data root onto itself and unmounts it only
# on a graceful exit: one SIGKILL and the directory can no longer be removed.
mount --make-rshared /
"""

# Runs once at boot, under dash (never busybox sh, whose own `ip` applet
# would shadow iproute2's): busybox init's second sysinit, or systemd's
# badsum-boot.service.
BOOT = r"""#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
log() { echo "badsum-boot: $*" > /dev/console; }

cfg=/sys/firmware/qemu_fw_cfg/by_name/opt/badsum
if [ ! -r $cfg/env/raw ]; then
    log "no configuration in fw_cfg ($cfg): not started by badsum?"
    exit 0
fi
. $cfg/env/raw

hostname "$BADSUM_HOSTNAME"
echo "$BADSUM_HOSTNAME" > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost\n' "$BADSUM_HOSTNAME" > /etc/hosts

install -m 600 $cfg/ssh_host_ed25519_key/raw /etc/ssh/ssh_host_ed25519_key
install -m 644 $cfg/ssh_host_ed25519_key.pub/raw /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 700 /root/.ssh
install -m 600 $cfg/authorized_keys/raw /root/.ssh/authorized_keys

# NICs get their lab names by MAC (PCI order is not a contract): first out
# of the way under temporary names, so eth0 can be given to any of them.
n=0
for spec in $BADSUM_LINKS; do
    name=${spec%%=*} mac=${spec#*=}
    for d in /sys/class/net/*; do
        if [ "$(cat $d/address)" = "$mac" ]; then ip link set "${d##*/}" name "bstmp$n"; fi
    done
    n=$((n + 1))
done
n=0
for spec in $BADSUM_LINKS; do
    ip link set "bstmp$n" name "${spec%%=*}" || log "no NIC with MAC ${spec#*=}"
    n=$((n + 1))
done

ip link set lo up
sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
ip link set mgmt0 up
ip addr add "$BADSUM_MGMT_V4" dev mgmt0
ip -6 addr add "$BADSUM_MGMT_V6" dev mgmt0 nodad
if [ -n "$BADSUM_DATA_V4" ]; then
    ip link set eth0 up
    ip addr add "$BADSUM_DATA_V4" dev eth0
    ip -6 addr add "$BADSUM_DATA_V6" dev eth0 nodad
fi
if [ -n "$BADSUM_SWITCH_PORTS" ]; then
    # A plain learning switch, like the embedded lab's: no STP, no address.
    # GRO off, as a switch ASIC never merges frames: a merged frame leaves
    # with a checksum computed after the injector's edit (a silent
    # corruption), and netem would see one large packet instead of many.
    ip link add br0 type bridge stp_state 0
    for p in $BADSUM_SWITCH_PORTS; do
        sysctl -qw "net.ipv6.conf.$p.disable_ipv6=1"
        ethtool -K "$p" gro off
        ip link set "$p" master br0 up
    done
    sysctl -qw net.ipv6.conf.br0.disable_ipv6=1
    ip link set br0 up
fi
log "up as $BADSUM_HOSTNAME ($(uname -r)) after $(cut -d' ' -f1 /proc/uptime) s"
"""

SSHD_CONFIG = """\
# badsum lab guest: key logins only, one host key (from fw_cfg), no DNS lookups.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
"""


# The boot script as a unit: before sshd (its host key comes from fw_cfg) and
# before anything that wants the network; after udev has seen the NICs.
BOOT_UNIT = """\
[Unit]
Description=badsum lab guest: hostname, SSH keys, NIC names and addresses from QEMU's fw_cfg
DefaultDependencies=no
After=local-fs.target systemd-udev-trigger.service
Before=network-pre.target ssh.service sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/badsum-boot

[Install]
WantedBy=sysinit.target
"""

# Units a systemd guest must not start (each linked to /dev/null): see the docstring.
MASKED = (
    "docker.service",
    "docker.socket",
    "containerd.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "getty@.service",
    "serial-getty@.service",
    "systemd-firstboot.service",
)


def env_file(values: dict[str, str]) -> str:
    """KEY=VALUE lines the boot script sources: every value shell-quoted."""
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def files() -> dict[str, tuple[str, int]]:
    """Path in the image -> (content, mode)."""
    return {
        "/etc/inittab": (INITTAB, 0o644),
        "/usr/local/sbin/badsum-mounts": (MOUNTS, 0o755),
        "/usr/local/sbin/badsum-boot": (BOOT, 0o755),
        "/etc/systemd/system/badsum-boot.service": (BOOT_UNIT, 0o644),
        "/etc/ssh/sshd_config.d/badsum.conf": (SSHD_CONFIG, 0o644),
        "/etc/fstab": ("# the root filesystem is mounted by the kernel (root=/dev/vda rw)\n", 0o644),
    }


def links() -> dict[str, str]:
    """Path in the image -> symlink target: the boot unit enabled, the masked units masked."""
    units = "/etc/systemd/system"
    return {
        INIT: "/bin/busybox",
        f"{units}/sysinit.target.wants/badsum-boot.service": f"{units}/badsum-boot.service",
        **{f"{units}/{unit}": "/dev/null" for unit in MASKED},
    }
