"""A fleet run's Prometheus textfiles on the controller: metrics/<host>.prom per host of the plan, and fleet.prom.

<host>.prom is the text the host writes itself when badsum_fleet_textfile_dir
is set (badsum.host.shared.metrics.render, from the same record, with the host's own
timestamp), so it can be shipped to that host's node_exporter textfile
directory. fleet.prom holds every host's series with a `host` label: one
file for one textfile collector (or a Pushgateway) that serves the fleet.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from badsum.files import atomic_write
from badsum.fleet.records import state
from badsum.host.shared import metrics

FLEET_FILE = "fleet.prom"
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


def file_name(host: str) -> str:
    """<host>.prom; a name that could not be a file name (/, a leading dot, odd bytes) percent-encoded."""
    if PLAIN_NAME.match(host):
        return f"{host}.prom"
    return urllib.parse.quote(host.encode("utf-8", "surrogateescape"), safe="").replace(".", "%2E") + ".prom"


def series(plan: Mapping, record: Mapping | None, now: float) -> list[metrics.Series]:
    """One host's samples, as the host renders them; a host the run did not reach: unknown, failed, at `now`."""
    check_mode = bool(plan.get("check_mode") or (record or {}).get("check_mode"))
    if record is None:
        return metrics.series(plan["playbook"], None, False, 0, now, check_mode)
    timestamp = (record.get("textfile") or {}).get("timestamp") or record.get("finished_at") or now
    ok = record.get("status") == "ok"
    changes = len(record.get("changes") or [])
    return metrics.series(plan["playbook"], state(record), ok, changes, timestamp, check_mode)


def write(run_dir: Path, plan: Mapping, records: Mapping[str, dict | None], now: float) -> dict:
    """Write them; the paths written."""
    fleet: list[metrics.Series] = []
    for host in plan["hosts"]:
        samples = series(plan, records.get(host), now)
        atomic_write(run_dir / "metrics" / file_name(host), metrics.exposition(samples))
        fleet += [(name, (("host", host), *labels), value) for name, labels, value in samples]
    atomic_write(run_dir / FLEET_FILE, metrics.exposition(fleet))
    return {"metrics_dir": str(run_dir / "metrics"), "fleet_metrics": str(run_dir / FLEET_FILE)}
