"""The files baked into the guest root filesystem: its init, boot script and sshd settings.

A guest boots straight into busybox init (no systemd: boot time under TCG
matters, and the host kit starts its daemons directly where there is no
systemd, as on the embedded lab). Everything that differs between guests
(hostname, addresses, SSH keys) comes from QEMU's fw_cfg at boot, so every
guest of every lab boots the same read-only image.
"""

from __future__ import annotations

import shlex

FW_CFG_PREFIX = "opt/badsum"
# fw_cfg items the controller passes (name -> what it holds)
FW_CFG_ITEMS = ("env", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "authorized_keys")
INIT = "/usr/local/lib/badsum/init"  # a symlink to busybox: named `init`, it runs busybox's init applet

INITTAB = """\
::sysinit:/usr/local/sbin/badsum-boot
::respawn:/usr/sbin/sshd -D -e
::ctrlaltdel:/bin/busybox poweroff -f
::shutdown:/bin/sync
"""

# Runs once as init's sysinit, under dash (never busybox sh, whose own `ip`
# applet would shadow iproute2's).
BOOT = r"""#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
log() { echo "badsum-boot: $*" > /dev/console; }

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
mount -t tmpfs cgroup /sys/fs/cgroup -o mode=755,nosuid,nodev,noexec
for c in cpuset cpu cpuacct blkio memory devices freezer net_cls perf_event pids; do
    mkdir -p /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
# Shared propagation everywhere, as systemd sets it on every real host. On a
# private / dockerd bind-mounts its data root onto itself and unmounts it only
# on a graceful exit: one SIGKILL and the directory can no longer be removed.
mount --make-rshared /

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


def env_file(values: dict[str, str]) -> str:
    """KEY=VALUE lines the boot script sources: every value shell-quoted."""
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def files() -> dict[str, tuple[str, int]]:
    """Path in the image -> (content, mode)."""
    return {
        "/etc/inittab": (INITTAB, 0o644),
        "/usr/local/sbin/badsum-boot": (BOOT, 0o755),
        "/etc/ssh/sshd_config.d/badsum.conf": (SSHD_CONFIG, 0o644),
        "/etc/fstab": ("# the root filesystem is mounted by the kernel (root=/dev/vda rw)\n", 0o644),
    }
