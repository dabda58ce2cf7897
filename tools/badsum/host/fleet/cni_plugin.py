#!/bin/sh
# badsum-rx-off: a chained CNI plugin that turns rx-checksumming off on the pod's veth.
# badsum-cni-plugin-marker: badsum-rx-off (this line tells badsum that the file is its own)
# Longer than ~300 lines: it is installed as one executable file (sh, Python and awk in one), so it
#   cannot be split into modules.
#
# Installed by `remediate apply` as <cni bin dir>/badsum-rx-off, this file whole,
# and chained after the main plugin (bridge, ptp...) of each CNI configuration
# list. The CNI `tuning` plugin cannot set offloads (containernetworking/plugins#238),
# hence this one. It must never be worse than the bug: a chained plugin that
# fails or hangs on ADD stops every pod on the node from starting. So:
#
# - ADD always prints the result it was given (prevResult, with the
#   configuration's cniVersion) and exits 0, within a second whatever the
#   host's python3, ethtool or nsenter do. It acts on veths only, and where it
#   cannot turn rx off it writes why to a bounded log (the configuration's
#   "badsumLog", /var/log/badsum-rx-off.jsonl by default); the audit reads the
#   log and the guard's next pass covers the veth.
# - DEL, CHECK, GC and STATUS succeed: it holds nothing to remove, and a failed
#   CHECK would have the runtime tear down a pod that the bug only exposes.
#
# One file, two languages. The shell part (POSIX sh, in a Python string that
# Python ignores) answers every command; for ADD it runs the Python part below
# (`python3 -I` on this very file, standard library only, Python 3.6 and later)
# under `timeout -s KILL`, which enters the pod's namespace with setns(2) and
# uses rtnetlink and the ETHTOOL_GRXCSUM/SRXCSUM ioctls, as badsum.host.netlink
# does (copied: a CNI plugin cannot import the host kit). When the Python part
# fails, hangs or is missing, the shell part prints the result itself, read
# from the configuration by an awk JSON scanner, and logs why.
# fmt: off
WRAPPER=""""
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
LC_ALL=C
export LC_ALL
umask 027
set -f
PY_TIMEOUT=0.5
AWK_TIMEOUT=0.3
LOG_DEFAULT=/var/log/badsum-rx-off.jsonl
LOG_LIMIT=32768
CV_DEFAULT='"1.1.0"'
VERSIONS='["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]'
NL='
'

# The CNI request on stdin -> line 1: the log path ("badsumLog", decoded; empty
# when absent or unusable), line 2: the configuration's cniVersion as a JSON
# literal (empty when absent or not a string), then the ADD result: prevResult
# with that cniVersion. Exit 2: the request is not a JSON object. Standard
# JSON (RFC 8259) is checked in full; bytes are bytes (LC_ALL=C).
SCAN='
function fail() { if (!bad) bad = 1; P = N + 1 }
function ws(   c) {
  while (P <= N) { c = substr(S, P, 1); if (c == " " || c == TAB || c == LF || c == CR) P++; else return }
}
function hexval(h,   i, v, d) {
  v = 0
  for (i = 1; i <= 4; i++) {
    d = index("0123456789abcdef", tolower(substr(h, i, 1)))
    if (!d) return -1
    v = v * 16 + d - 1
  }
  return v
}
# A code point as UTF-8; DEC_NA for a control character or a lone surrogate (no path has them).
function utf8(v) {
  if (v < 32 || v == 127 || (v >= 55296 && v < 57344)) return DEC_NA
  if (v < 128) return sprintf("%c", v)
  if (v < 2048) return sprintf("%c%c", 192 + int(v / 64), 128 + v % 64)
  if (v < 65536) return sprintf("%c%c%c", 224 + int(v / 4096), 128 + int(v / 64) % 64, 128 + v % 64)
  return sprintf("%c%c%c%c", 240 + int(v / 262144), 128 + int(v / 4096) % 64, 128 + int(v / 64) % 64, 128 + v % 64)
}
# A string at P: P goes past it; DEC holds it decoded (UTF-8).
function str(   c, e, v, w) {
  if (substr(S, P, 1) != Q) return fail()
  P++; DEC = ""
  while (P <= N) {
    c = substr(S, P, 1)
    if (c == Q) { P++; return 1 }
    if (index(CTL, c)) return fail()
    if (c == BS) {
      e = substr(S, P + 1, 1)
      if (e == "u") {
        v = hexval(substr(S, P + 2, 4))
        if (v < 0) return fail()
        P += 6
        if (v >= 55296 && v < 56320 && substr(S, P, 2) == BS "u") {
          w = hexval(substr(S, P + 2, 4))
          if (w >= 56320 && w < 57344) { v = 65536 + (v - 55296) * 1024 + w - 56320; P += 6 }
        }
        DEC = DEC utf8(v); continue
      }
      if (!index(Q BS "/bfnrt", e)) return fail()
      DEC = DEC (e == "n" ? LF : e == "t" ? TAB : e == "r" ? CR : index("bf", e) ? DEC_NA : e); P += 2; continue
    }
    DEC = DEC c; P++
  }
  return fail()
}
function num(   s) {
  s = P
  while (P <= N && index("+-.0123456789eE", substr(S, P, 1))) P++
  if (substr(S, s, P - s) !~ /^-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?$/) fail()
}
function value(depth,   c) {
  if (depth > 64) return fail()
  ws(); c = substr(S, P, 1)
  if (c == "{") return object(depth, 0)
  if (c == "[") {
    P++; ws()
    if (substr(S, P, 1) == "]") { P++; return }
    while (!bad) {
      value(depth + 1); ws(); c = substr(S, P, 1); P++
      if (c == "]") return
      if (c != ",") return fail()
    }
    return
  }
  if (c == Q) return str()
  if (substr(S, P, 4) == "true" || substr(S, P, 4) == "null") { P += 4; return }
  if (substr(S, P, 5) == "false") { P += 5; return }
  if (c == "-" || index("0123456789", c)) return num()
  return fail()
}
# An object at P. With keep, its members are recorded: KEY[i], FROM[i] (where
# the key starts), TO[i] (past the value), VFROM[i], VSTR[i] (the value decoded
# when a string); M of them.
function object(depth, keep,   c, k, from, vfrom) {
  P++; ws()
  if (keep) M = 0
  if (substr(S, P, 1) == "}") { P++; return }
  while (!bad) {
    ws(); from = P; str(); k = DEC; ws()
    if (substr(S, P, 1) != ":") return fail()
    P++; ws(); vfrom = P
    value(depth + 1)
    if (keep) {
      M++; KEY[M] = k; FROM[M] = from; TO[M] = P; VFROM[M] = vfrom
      VSTR[M] = substr(S, vfrom, 1) == Q ? DEC : ""
    }
    ws(); c = substr(S, P, 1); P++
    if (c == "}") return
    if (c != ",") return fail()
  }
}
BEGIN {
  Q = sprintf("%c", 34); BS = sprintf("%c", 92); TAB = sprintf("%c", 9); LF = sprintf("%c", 10); CR = sprintf("%c", 13)
  DEC_NA = sprintf("%c", 1); DEL = sprintf("%c", 127); for (i = 1; i < 32; i++) CTL = CTL sprintf("%c", i)
}
{ S = NR == 1 ? $0 : S LF $0 }
END {
  N = length(S); P = 1; ws()
  if (substr(S, P, 1) != "{") exit 2
  object(0, 1); ws()
  if (bad || P <= N) exit 2
  cv = ""; pf = 0; lp = ""
  for (i = 1; i <= M; i++) {
    if (KEY[i] == "cniVersion") cv = substr(S, VFROM[i], 1) == Q ? substr(S, VFROM[i], TO[i] - VFROM[i]) : ""
    else if (KEY[i] == "prevResult") { pf = VFROM[i]; pt = TO[i] }
    else if (KEY[i] == "badsumLog") lp = VSTR[i]
  }
  if (substr(lp, 1, 1) != "/") lp = ""
  for (i = 1; i <= length(lp); i++) if (index(CTL DEL, substr(lp, i, 1))) lp = ""
  print lp; print cv
  prev = pf ? substr(S, pf, pt - pf) : "null"
  if (prev == "null") { print (cv != "" ? "{" Q "cniVersion" Q ":" cv "}" : "{}"); exit 0 }
  if (cv == "" || substr(prev, 1, 1) != "{") { print prev; exit 0 }
  P = pf; object(0, 1); out = "{" Q "cniVersion" Q ":" cv
  for (i = 1; i <= M; i++) if (KEY[i] != "cniVersion") out = out "," substr(S, FROM[i], TO[i] - FROM[i])
  print out "}"
}'

# A JSON error result (CNI spec, section 5), on stdout.
error() {
  printf '{"cniVersion":%s,"code":%s,"msg":"%s","details":"%s"}\n' "${CV:-$CV_DEFAULT}" "$1" "$2" "$3"
}

# Bytes a log record can carry as they are (anything else becomes "?").
clean() {
  printf '%s' "$1" | tr -c 'A-Za-z0-9_.:/@+=,-' '?' | cut -b 1-256
}

# One JSON line in the log, never over LOG_LIMIT a file (two files: the log and
# its .1): only into a directory that root (or we) own and no one else can
# write, never through a symlink or into anything but a regular file.
log() {
  path=${LOG_PATH:-$LOG_DEFAULT}
  dir=${path%/*}
  [ -d "${dir:-/}" ] || mkdir -p -m 0755 "$dir" 2>/dev/null
  set -- "$1" "$2" $(ls -ldn -- "${dir:-/}" 2>/dev/null)
  line=$(printf '{"time":%s,"by":"sh","command":"ADD","outcome":"%s","reason":"%s",' "$(date +%s)" "$1" "$2"
    printf '"container":"%s","netns":"%s","ifname":"%s","ifname_hex":"%s"}' \
    "$(clean "${CNI_CONTAINERID-}")" "$(clean "${CNI_NETNS-}")" "$(clean "${CNI_IFNAME-}")" \
    "$(printf '%s' "${CNI_IFNAME-}" | od -An -v -tx1 | tr -d ' \n')")
  case "$3:$5" in
    d????w*|d???????w*) why="$dir is writable by others than its owner" ;;
    d*:0|d*:"$(id -u)") why= ;;
    *) why="$dir is not a directory that root owns" ;;
  esac
  if [ -z "$why" ] && [ -L "$path" ]; then why="$path is a symlink"; fi
  if [ -z "$why" ] && [ -e "$path" ] && [ ! -f "$path" ]; then why="$path is not a regular file"; fi
  if [ -n "$why" ]; then
    printf 'badsum-rx-off: not logged (%s): %s\n' "$why" "$line" >&2
    return
  fi
  size=$(wc -c < "$path" 2>/dev/null || echo 0)
  if [ "$size" -gt $((2 * LOG_LIMIT)) ]; then : > "$path"
  elif [ "$size" -ge "$LOG_LIMIT" ]; then mv -f "$path" "$path.1"
  fi
  printf '%s\n' "$line" >> "$path"
}

# `timeout -s KILL` ends the whole process group: a hung python3 and its children.
bounded() {
  limit=$1
  shift
  if command -v timeout >/dev/null 2>&1; then timeout -s KILL "$limit" "$@"; else return 125; fi
}

add() {
  conf=$(cat; echo .)
  conf=${conf%.}
  token="badsum-rx-off:done:$$"
  # Into files, not pipes: a child that python3 leaves behind (in a session of its own, out
  # of timeout's reach) would hold a pipe open, and we, then the runtime, would wait for it.
  if tmp=$(mktemp -d /run/badsum-rx-off.XXXXXX 2>/dev/null || mktemp -d /tmp/badsum-rx-off.XXXXXX 2>/dev/null); then
    printf '%s' "$conf" | bounded "$PY_TIMEOUT" python3 -I "$0" "$token" > "$tmp/out" 2> "$tmp/err"
    status=$?
    out=$(cat "$tmp/out")
    head -c 4096 "$tmp/err" >&2
    rm -rf "$tmp"
  else
    out=$(printf '%s' "$conf" | bounded "$PY_TIMEOUT" python3 -I "$0" "$token")
    status=$?
  fi
  case $status:$out in
    [01]:*"$NL$token")
      printf '%s\n' "${out%"$NL$token"}"
      exit "$status"
      ;;
  esac
  case $status in
    0|1) why="python3 gave no result (exit $status)" ;;
    125) why="timeout(1) is missing: python3 not run" ;;
    126|127) why="python3 is missing or cannot run (exit $status)" ;;
    137) why="python3 did not finish within $PY_TIMEOUT s" ;;
    *) why="python3 failed (exit $status)" ;;
  esac
  scan=$(printf '%s' "$conf" | bounded "$AWK_TIMEOUT" awk "$SCAN")
  status=$?
  if [ "$status" = 2 ]; then
    error 6 "badsum-rx-off: the network configuration is not a JSON object" "$why"
    exit 1
  fi
  if [ "$status" != 0 ]; then
    error 100 "badsum-rx-off: neither python3 nor awk could read the network configuration" "$why; awk: exit $status"
    LOG_PATH= log failed "$why; awk: exit $status: no result"
    exit 1
  fi
  LOG_PATH=${scan%%"$NL"*}
  rest=${scan#*"$NL"}
  printf '%s\n' "${rest#*"$NL"}"
  log fallback "$why: result passed on by the shell, rx-checksumming not changed"
  exit 0
}

version() {
  scan=$(cat | bounded "$AWK_TIMEOUT" awk "$SCAN" 2>/dev/null)
  rest=${scan#*"$NL"}
  CV=${rest%%"$NL"*}
  printf '{"cniVersion":%s,"supportedVersions":%s}\n' "${CV:-$CV_DEFAULT}" "$VERSIONS"
  exit 0
}

case ${CNI_COMMAND-} in
  ADD) add ;;
  DEL|CHECK|GC|STATUS) exit 0 ;;
  VERSION) version ;;
esac
echo "badsum-rx-off: a chained CNI plugin (rx-checksumming off on the pod's veth); CNI versions $VERSIONS" >&2
error 4 "badsum-rx-off: CNI_COMMAND must be ADD, DEL, CHECK, GC, STATUS or VERSION" \
  "CNI_COMMAND=$(clean "${CNI_COMMAND-}")"
exit 1
"""
# fmt: on
# The imports come after the shell part: it must be the file's first statement.
# ruff: noqa: E402

import errno
import json
import os
import stat
import struct
import sys
import time

LOG_DEFAULT = "/var/log/badsum-rx-off.jsonl"
LOG_LIMIT = 32768  # per file: with its .1, the log stays under ~64 KiB
CONF_LIMIT = 1 << 22  # no runtime sends a 4 MiB configuration
IFNAMSIZ = 16

CLONE_NEWNET = 0x40000000
# include/uapi/linux/{netlink,rtnetlink,if_link}.h
NLMSG_ERROR, NLMSG_DONE, RTM_NEWLINK, RTM_GETLINK = 2, 3, 16, 18
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_IFNAME, IFLA_LINKINFO, IFLA_INFO_KIND = 3, 18, 1
NLMSG_HDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")
RTATTR = struct.Struct("=HH")
# include/uapi/linux/{sockios,ethtool}.h
SIOCETHTOOL, ETHTOOL_GRXCSUM, ETHTOOL_SRXCSUM = 0x8946, 0x14, 0x15
IFREQ_SIZE = 40


class Left(Exception):
    """rx-checksumming was left as it is; outcome says in which way (the log's "outcome")."""

    def __init__(self, outcome, reason):
        # type: (str, str) -> None
        super().__init__(reason)
        self.outcome = outcome


def result_of(conf):
    # type: (dict) -> object
    """The ADD result: prevResult passed through, in the configuration's cniVersion (CNI spec, section 5)."""
    prev, version = conf.get("prevResult"), conf.get("cniVersion")
    if prev is None:
        return {"cniVersion": version} if isinstance(version, str) else {}
    if isinstance(prev, dict) and isinstance(version, str):
        return dict(prev, cniVersion=version)
    return prev


def _attrs(data, offset, end):
    # type: (bytes, int, int) -> list
    found = []
    while offset + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            break
        found.append((kind & 0x3FFF, data[offset + RTATTR.size : offset + length]))
        offset += (length + 3) & ~3
    return found


def link_kinds():
    # type: () -> dict
    """Every link of the current network namespace: name (bytes) -> IFLA_INFO_KIND ("" for none: lo, a NIC)."""
    import socket

    kinds = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        request = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        header = NLMSG_HDR.pack(NLMSG_HDR.size + len(request), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        sock.sendall(header + request)
        while True:
            data, offset = sock.recv(1 << 16), 0
            while offset + NLMSG_HDR.size <= len(data):
                length, kind = NLMSG_HDR.unpack_from(data, offset)[:2]
                if length < NLMSG_HDR.size or kind == NLMSG_DONE:
                    return kinds
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, offset + NLMSG_HDR.size)[0]
                    raise OSError(code, "rtnetlink: " + os.strerror(code))
                if kind == RTM_NEWLINK:
                    name, info = b"", b""
                    for attr, value in _attrs(data, offset + NLMSG_HDR.size + IFINFOMSG.size, offset + length):
                        if attr == IFLA_IFNAME:
                            name = value.rstrip(b"\0")
                        elif attr == IFLA_LINKINFO:
                            info = value
                    found = [v for a, v in _attrs(info, 0, len(info)) if a == IFLA_INFO_KIND]
                    kinds[name] = found[0].rstrip(b"\0").decode("ascii", "replace") if found else ""
                offset += (length + 3) & ~3


def _ethtool(sock, ifname, cmd, data=0):
    # type: (object, bytes, int, int) -> int
    import ctypes
    import fcntl

    value = ctypes.create_string_buffer(struct.pack("=II", cmd, data))
    ifreq = struct.pack("16sP", ifname, ctypes.addressof(value)).ljust(IFREQ_SIZE, b"\0")
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    return struct.unpack("=II", value.raw[:8])[1]


def rx_checksumming(ifname, set_to=None):
    # type: (bytes, object) -> bool
    """NETIF_F_RXCSUM of a device of the current namespace (`ethtool -k`), after setting it if set_to is a bool."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        if set_to is not None:
            _ethtool(sock, ifname, ETHTOOL_SRXCSUM, int(bool(set_to)))
        return bool(_ethtool(sock, ifname, ETHTOOL_GRXCSUM))


def rx_off():
    # type: () -> None
    """rx-checksumming off on CNI_IFNAME in CNI_NETNS, if it is a veth; Left says why not."""
    import ctypes

    netns, ifname = os.environb.get(b"CNI_NETNS", b""), os.environb.get(b"CNI_IFNAME", b"")
    if not netns or not ifname:
        raise Left("failed", "CNI_NETNS or CNI_IFNAME is empty")
    if len(ifname) >= IFNAMSIZ:
        raise Left("failed", "CNI_IFNAME is longer than an interface name can be")
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise Left("failed", "cannot open the pod's network namespace: " + exc.strerror) from None
    own, pod = os.stat("/proc/self/ns/net"), os.fstat(fd)
    if (own.st_dev, own.st_ino) == (pod.st_dev, pod.st_ino):
        raise Left("skipped", "CNI_NETNS is the plugin's own network namespace: no pod's interface to change")
    libc = ctypes.CDLL(None, use_errno=True)
    # This process only exits after this: nothing to switch back to.
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise Left("failed", "setns into CNI_NETNS: " + os.strerror(ctypes.get_errno()))
    kinds = link_kinds()
    if ifname not in kinds:
        raise Left("failed", "no interface of that name in the pod's network namespace")
    if kinds[ifname] != "veth":
        what = ("a " + kinds[ifname]) if kinds[ifname] else "a device without a link kind (loopback, physical)"
        raise Left("not-veth", what + " is not a veth: the bug does not concern it, left alone")
    if rx_checksumming(ifname) and rx_checksumming(ifname, set_to=False):
        raise Left("failed", "rx-checksumming stayed on after ETHTOOL_SRXCSUM")


def usable_path(path):
    # type: (object) -> bool
    """An absolute path without control characters or lone surrogates (the shell part's rule too)."""
    try:
        return (
            isinstance(path, str)
            and path.startswith("/")
            and not any(ord(c) < 32 or ord(c) == 127 for c in path)
            and bool(path.encode("utf-8"))
        )
    except UnicodeEncodeError:
        return False


def write_log(path, line):
    # type: (str, bytes) -> None
    """Append one line, rotating past LOG_LIMIT: into a directory that root (or we) own and no one
    else can write, never through a symlink (O_NOFOLLOW), never into anything but a regular file."""
    import fcntl

    directory, name = os.path.split(path)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            st = os.fstat(dfd)
            if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
                raise OSError(errno.EPERM, directory + " is writable by others than root")
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, 0o640, dir_fd=dfd)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(errno.EINVAL, path + " is not a regular file")
                fcntl.flock(fd, fcntl.LOCK_EX)  # concurrent ADDs: one rotates at a time
                size = os.fstat(fd).st_size
                if size > 2 * LOG_LIMIT:  # not ours (a log only grows past LOG_LIMIT by a line): cut
                    os.ftruncate(fd, 0)
                elif size >= LOG_LIMIT:
                    os.rename(name, name + ".1", src_dir_fd=dfd, dst_dir_fd=dfd)
                    os.close(fd)
                    fd = os.open(name, flags, 0o640, dir_fd=dfd)
                os.write(fd, line)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)
    except OSError as exc:
        why = "symlink" if exc.errno == errno.ELOOP else exc.strerror
        sys.stderr.write(f"badsum-rx-off: not logged to {path} ({why}): {line.decode()}")


def record(conf, outcome, reason):
    # type: (dict, str, str) -> None
    env = os.environb

    def text(value):
        # type: (bytes) -> str
        return value[:256].decode("utf-8", "backslashreplace")

    ifname = env.get(b"CNI_IFNAME", b"")
    fields = {
        "time": round(time.time(), 3),
        "by": "python",
        "command": "ADD",
        "outcome": outcome,
        "reason": reason[:512],
        "container": text(env.get(b"CNI_CONTAINERID", b"")),
        "netns": text(env.get(b"CNI_NETNS", b"")),
        "ifname": text(ifname),
        "ifname_hex": ifname[:64].hex(),
    }
    path = conf.get("badsumLog")
    if not usable_path(path):
        path = LOG_DEFAULT
    write_log(path, (json.dumps(fields, sort_keys=True) + "\n").encode())


def emit(document, token):
    # type: (object, str) -> None
    """The shell part passes our output on only when it ends with its token: garbage never reaches the runtime."""
    sys.stdout.write(json.dumps(document) + "\n" + token + "\n")
    sys.stdout.flush()


def main(argv):
    # type: (list) -> int
    token = argv[1] if len(argv) > 1 else ""
    raw = sys.stdin.buffer.read(CONF_LIMIT + 1)
    try:
        if len(raw) > CONF_LIMIT:
            raise ValueError(f"over {CONF_LIMIT} bytes")
        # As Go's encoding/json (libcni) reads it: invalid UTF-8 becomes U+FFFD.
        conf = json.loads(raw.decode("utf-8", "replace"))
        if not isinstance(conf, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        msg = "badsum-rx-off: the network configuration is not a JSON object"
        emit({"cniVersion": "1.1.0", "code": 6, "msg": msg, "details": str(exc)}, token)
        return 1
    try:
        rx_off()
    except Left as left:
        record(conf, left.outcome, str(left))
    except Exception as exc:  # never worse than the bug: whatever went wrong, the pod starts
        record(conf, "failed", f"{type(exc).__name__}: {exc}")
    emit(result_of(conf), token)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
