#!/usr/bin/python3 -I
"""lab - what you may ask of your own badsum lab. `lab help` says what it can do.

Installed in each student's home on host A of their lab. It stands alone
(Python's standard library only) and talks to the workshop service on the
lab's management network, with the token in ~/.lab-token; the service acts on
this student's lab alone.
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

HOME = Path.home()
USAGE = """\
lab run TOPOLOGY CONDITION [--capture] [--preset article] [--pattern stuck-bit] [--conntrack-checksum 0|1]
        one experiment cell. TOPOLOGY: {topologies}
        CONDITION: vulnerable (emulated on this machine) workaround patched
lab results [RUN]            your runs, or one run's details
lab counters                 checksum-error counters on host B (and in a standing container)
lab container TOPOLOGY up|down   keep a container standing on host B
lab ethtool [rx on|off]      rx-checksumming of the standing container's own interface
lab pcap RUN                 a run's captures (run it with --capture) into ./captures/RUN/
lab fleet audit|remediate|remediate-check|rollback   the fleet playbooks on your lab
lab check [NN]               is exercise NN done? (all of them without NN)
lab time                     time left
"""


def request(body: dict) -> dict:
    service = (HOME / ".lab-service").read_text().strip()
    token = (HOME / ".lab-token").read_text().strip()
    req = urllib.request.Request(
        f"http://{service}/api",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Lab-Token": token},
    )
    try:
        with urllib.request.urlopen(req, timeout=900) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b'{"ok": false, "text": "refused"}')
    except OSError as exc:
        return {"ok": False, "text": f"the workshop service does not answer ({exc}): ask the trainer"}


def parse(argv: list[str]) -> dict:
    if not argv or argv[0] in ("help", "-h", "--help"):
        known = HOME / ".lab-topologies"  # the workshop writes the topology catalogue's names there
        raise SystemExit(USAGE.format(topologies=known.read_text().strip() if known.exists() else "see the exercises"))
    action, rest = argv[0], argv[1:]
    flags = {}
    words = []
    i = 0
    while i < len(rest):
        if rest[i] == "--capture":
            flags["capture"] = True
        elif rest[i] in ("--preset", "--pattern", "--conntrack-checksum") and i + 1 < len(rest):
            flags[rest[i][2:].replace("-", "_")] = rest[i + 1]
            i += 1
        else:
            words.append(rest[i])
        i += 1
    names = {
        "run": ["topology", "condition"],
        "results": ["run"],
        "container": ["topology", "state"],
        "ethtool": ["_rx", "rx"],
        "pcap": ["run"],
        "fleet": ["step"],
        "check": ["exercise"],
    }.get(action, [])
    args = {name: word for name, word in zip(names, words, strict=False) if not name.startswith("_")}
    return {"action": action, "args": {**args, **flags}}


def main() -> int:
    body = parse(sys.argv[1:])
    answer = request(body)
    print(answer.get("text", ""))
    for name, blob in (answer.get("files") or {}).items():
        where = Path("captures") / answer["data"]["run"]
        where.mkdir(parents=True, exist_ok=True)
        (where / os.path.basename(name)).write_bytes(base64.b64decode(blob))
        print(f"  saved {where / os.path.basename(name)}")
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
