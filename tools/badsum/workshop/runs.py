"""The room's runs: the cells students ask for, many seats' at once in one playbook run, shared fairly.

A `lab run` used to be an ansible-playbook of its own, four at a time: on two
cores, twenty students pressing "run" together waited two minutes, most of it
spent starting Ansible, preparing hosts that were ready, and writing a report
nobody read. Here every waiting cell goes into the next batch - one per seat
(a student who asks for five runs at once gets one per batch, and nobody
waits behind them) - and a batch is one `playbooks/workshop_runs.yml` on a
combined inventory, each seat's server running its cell side by side with
the others, as reproduce.yml runs its pairs. The seats' labs are prepared
once, when they come up (`prepare`), and their hosts' facts kept for the runs.

Each seat's cell is planned exactly as badsum.kit.validate plans a run
(badsum.settings: every setting checked, the pair found in the seat's own
inventory) and recorded in that seat's run directory (run.json) before the
batch starts, so a batch never mixes one seat's results with another's.
"""

# Longer than ~300 lines: the batch planner and its fairness rule are one algorithm (who goes in the
#   next batch, and why); split, neither half can be checked.

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from badsum import ansible, paths
from badsum import settings as experiment
from badsum.analysis.records import host_record
from badsum.files import atomic_write, write_private
from badsum.lab import cgroups
from badsum.lab.inventory import inventory_data
from badsum.lab.spec import LabError
from badsum.paths import LAB_SETTINGS
from badsum.version import version
from badsum.workshop.room import ROOT, Seat

DEFAULTS = paths.role_defaults("badsum_experiment")
RUNS = "playbooks/workshop_runs.yml"
PREPARE = "playbooks/workshop_prepare.yml"
BATCHES = ROOT / "batches"
# The presses of one moment go into one batch: it starts once nobody new came for
# GATHER seconds (at most GATHER_MAX after the first). BATCHES_AT_ONCE side by side.
GATHER = 0.5
GATHER_MAX = 2.0
BATCHES_AT_ONCE = 2
BATCH_TIMEOUT = 600
FACTS = "facts.json"  # in a seat's directory: its hosts' facts, from `prepare`
OWN = "badsum_experiment_"  # the experiment's settings: in the plan, each seat's own


class RunRefused(ValueError):
    """A run the service will not start, with the reason for the student."""


# -- the combined inventory -------------------------------------------------------------


def seat_hosts(seat: Seat, facts: dict | None = None) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """The seat's hosts as one inventory names them (st01-host1...), each with all its variables, and its groups."""
    data = inventory_data(seat.spec(), seat.inventory)["all"]
    lab = data["children"]["badsum_lab"]
    prefix = f"{seat.student}-"
    hosts: dict[str, dict] = {}
    for name, own in lab["hosts"].items():
        merged = {**data["vars"], **lab["vars"], **own}
        for key in ("badsum_experiment_client", "badsum_experiment_corruptor"):
            if key in merged:
                merged[key] = prefix + merged[key]
        if facts and name in facts:
            merged["badsum_common_facts"] = facts[name]
        hosts[prefix + name] = merged
    groups = {
        group: [prefix + h for h in data["children"][group]["hosts"]] for group in ("clients", "servers", "switches")
    }
    return hosts, groups


def write_inventory(directory: Path, seats: list[tuple[Seat, dict]], facts: dict[str, dict]) -> Path:
    """hosts.yml for these seats (each with its host variables: extra), the lab's settings as group_vars."""
    groups: dict[str, dict] = {"clients": {}, "servers": {}, "switches": {}}
    for seat, extra in seats:
        hosts, seat_groups = seat_hosts(seat, facts.get(seat.student))
        for group, names in seat_groups.items():
            for name in names:
                groups[group][name] = {**hosts[name], **extra}
    (directory / "group_vars").mkdir(parents=True, exist_ok=True)
    shutil.copy(LAB_SETTINGS, directory / "group_vars" / "all.yml")
    inventory = {"all": {"children": {g: {"hosts": h} for g, h in groups.items()}}}
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    return directory


# -- a seat's plan ------------------------------------------------------------------------


def _defaults() -> dict:
    """The experiment role's defaults, as Ansible resolves them for a workshop run (no template left)."""
    raw = yaml.safe_load(DEFAULTS.read_text())
    raw["badsum_experiment_capture"] = False
    raw.pop("badsum_experiment_results_dir")  # always the seat's own
    return raw


def plan_seat(seat: Seat, extra: dict, facts: dict | None = None) -> dict:
    """The seat's run, planned and checked as badsum.kit.validate does it: its pair, cell, settings and paths."""
    hosts, groups = seat_hosts(seat, facts)
    raw = {**_defaults(), **yaml.safe_load(LAB_SETTINGS.read_text()), **extra}
    checked = experiment.experiment_settings(raw)
    if checked.problems:
        raise RunRefused("; ".join(checked.problems))
    plan, problems = experiment.plan(raw, groups, hosts, checked.values)
    if problems:
        raise RunRefused("; ".join(problems))
    plan.update(experiment.run_paths(checked.values), settings=checked.values)
    plan["window"] = experiment.corruption_window(checked.values)  # as badsum.kit.validate plans it
    return plan


def record(seat: Seat, plan: dict, facts: dict) -> None:
    """run.json in the seat's run directory, as `badsum run-info` writes it: what the cell's judge reads."""
    hosts, groups = seat_hosts(seat, facts)
    member = {h: [g for g, names in groups.items() if h in names] for h in hosts}
    info = {
        "plan": plan,
        "inventory": [str(seat.inventory)],
        "embedded_lab": True,
        "hosts": {h: host_record(hosts[h].get("badsum_common_facts"), member[h]) for h in plan["hosts"]},
        "command_line": ["badsum", "workshop", "serve", "(a student's `lab run`)"],
        "badsum_version": version(),
        "started": time.time(),
    }
    run_dir = Path(plan["run_dir"])
    (run_dir / "raw").mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "run.json", json.dumps(info, indent=1))


# -- preparing, once per lab --------------------------------------------------------------


def load_facts(seat: Seat) -> dict | None:
    """The seat's hosts' facts from `prepare`, or None when its lab was not prepared (or was made again since)."""
    path = seat.dir / FACTS
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    state = seat.spec().state_dir / "lab.json"
    try:
        created = json.loads(state.read_text())["created"]
    except (OSError, ValueError, KeyError):
        return None
    return data["hosts"] if data.get("lab_created") == created else None


def prepare(seats: list[Seat], timeout: int = BATCH_TIMEOUT, cgroup: list[Path] | None = None) -> None:
    """Prepare these seats' labs in one playbook run (host kit, checks, programs), and keep their facts.

    With cgroup (`workshop up`'s: cgroup.procs files), the playbook runs there and dies with the caller.
    """
    if not seats:
        return
    work = _workdir("prepare")
    try:
        inventory = write_inventory(work / "inventory", [(s, {}) for s in seats], {})
        out = work / "facts.json"
        proc = ansible.playbook(
            PREPARE,
            inventory,
            {"workshop_facts_file": str(out)},
            timeout=timeout,
            preexec_fn=cgroups.contained(cgroup) if cgroup else None,
        )
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(proc.stdout.splitlines()[-15:])
            raise LabError(f"the seats' labs could not be prepared:\n{tail}")
        found = json.loads(out.read_text())
        for seat in seats:
            prefix = f"{seat.student}-"
            hosts = {h.removeprefix(prefix): f for h, f in found.items() if h.startswith(prefix)}
            created = json.loads((seat.spec().state_dir / "lab.json").read_text())["created"]
            write_private(seat.dir / FACTS, json.dumps({"lab_created": created, "hosts": hosts}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _workdir(kind: str) -> Path:
    BATCHES.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = BATCHES / f"{kind}-{time.time_ns()}-{threading.get_ident()}"
    path.mkdir(mode=0o700)
    return path


# -- the queue ----------------------------------------------------------------------------


@dataclass
class Request:
    seat: Seat
    extra: dict  # the settings this run asks for: badsum_experiment_* (run id, cell, knobs) and the preset's others
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    asked: float = field(default_factory=time.monotonic)


class Runs:
    """The room's queue of runs, and the threads that run their batches.

    Fair share: a seat has at most one run in flight; a batch takes the
    oldest waiting request of every seat that has none (so nobody waits
    behind a student who asked for five), the longest-waiting first. A batch
    starts once the requests stop arriving for `gather` seconds (the presses
    of one moment: at most `gather_max` after the first), and up to
    `at_once` batches run side by side: a student who pressed a little late
    does not wait for the whole of the batch before.
    `execute` runs a batch (run_batch: the tests give their own).
    """

    def __init__(
        self,
        execute: Callable[[list[Request]], None] | None = None,
        gather: float = GATHER,
        gather_max: float = GATHER_MAX,
        at_once: int = BATCHES_AT_ONCE,
    ) -> None:
        self.execute = execute or run_batch
        self.gather, self.gather_max = gather, gather_max
        self.waiting: list[Request] = []
        self.in_flight: set[str] = set()
        self.cond = threading.Condition()
        self.slots = threading.BoundedSemaphore(at_once)
        self.batches: list[list[str]] = []  # the seats of each batch started, in order
        threading.Thread(target=self._loop, daemon=True, name="runs").start()

    def submit(self, seat: Seat, extra: dict) -> Request:
        request = Request(seat, extra)
        with self.cond:
            self.waiting.append(request)
            self.cond.notify_all()
        return request

    def run(self, seat: Seat, extra: dict, timeout: float = 2 * BATCH_TIMEOUT) -> None:
        """Submit a run and wait for its cell; raises RunRefused with the reason when it could not run."""
        request = self.submit(seat, extra)
        if not request.done.wait(timeout):
            raise RunRefused("the run did not finish in time")
        if request.error:
            raise RunRefused(request.error)

    def _ready(self) -> list[Request]:
        """Requests that may go now: the oldest of each seat with nothing in flight (the caller holds cond)."""
        chosen: dict[str, Request] = {}
        for request in sorted(self.waiting, key=lambda r: r.asked):
            if request.seat.student not in self.in_flight:
                chosen.setdefault(request.seat.student, request)
        return list(chosen.values())

    def take(self) -> list[Request]:
        """The next batch, marked in flight (the caller holds cond)."""
        batch = self._ready()
        for request in batch:
            self.waiting.remove(request)
            self.in_flight.add(request.seat.student)
        return batch

    def _loop(self) -> None:
        while True:
            self.slots.acquire()
            with self.cond:
                while not self._ready():
                    self.cond.wait()
                first = time.monotonic()
                seen = len(self.waiting)
                # Gather: until nobody new came for `gather` seconds, or `gather_max` after the first.
                while time.monotonic() - first < self.gather_max:
                    self.cond.wait(self.gather)
                    if len(self.waiting) == seen:
                        break
                    seen = len(self.waiting)
                batch = self.take()
                self.batches.append([r.seat.student for r in batch])
            threading.Thread(target=self._run, args=(batch,), daemon=True, name="batch").start()

    def _run(self, batch: list[Request]) -> None:
        try:
            self.execute(batch)
        except Exception as exc:  # a batch that broke fails its runs, never the service
            for request in batch:
                request.error = request.error or f"the run failed: {exc}"
        finally:
            with self.cond:
                for request in batch:
                    self.in_flight.discard(request.seat.student)
                self.cond.notify_all()
            self.slots.release()
            for request in batch:
                request.done.set()


def run_batch(batch: list[Request]) -> None:
    """Plan and record each request's run, run them all in one playbook, tell each request how it went."""
    work = _workdir("batch")
    try:
        planned: list[tuple[Request, dict]] = []
        # A lab made again since it was prepared (a reset) is prepared again first: all such at once.
        prepare([r.seat for r in batch if load_facts(r.seat) is None])
        facts = {r.seat.student: load_facts(r.seat) or {} for r in batch}
        for request in batch:
            found = facts[request.seat.student]
            try:
                plan = plan_seat(request.seat, request.extra, found)
            except RunRefused as exc:
                request.error = str(exc)
                continue
            record(request.seat, plan, found)
            planned.append((request, plan))
        if not planned:
            return
        # What is not the experiment's own (a preset's traffic settings) goes to the seat's hosts.
        extras = [(r.seat, {k: v for k, v in r.extra.items() if not k.startswith(OWN)}) for r, _ in planned]
        inventory = write_inventory(work / "inventory", extras, facts)
        servers = {}
        for _, plan in planned:
            own = {key: plan[key] for key in ("run_id", "run_dir", "settings", "window")}
            servers.update({server: {**pair, **own} for server, pair in plan["servers"].items()})
        first = planned[0][1]
        whole = {
            "run_id": first["run_id"],
            "run_dir": first["run_dir"],
            "settings": first["settings"],
            "window": first["window"],
            "servers": servers,
            "cells": [cell for _, plan in planned for cell in plan["cells"]],
            "hosts": sorted({h for _, plan in planned for h in plan["hosts"]}),
        }
        plan_file = work / "plan.json"
        write_private(plan_file, json.dumps({"workshop_plan": whole}))
        # The plan from a private file (it names the seats' inventories), not the command line.
        proc = ansible.playbook(RUNS, inventory, options=["-e", f"@{plan_file}"], timeout=BATCH_TIMEOUT)
        for request, plan in planned:
            if not any(Path(plan["run_dir"]).glob("*-*.json")):
                tail = "\n".join(proc.stdout.splitlines()[-12:])
                request.error = f"the run failed before its cell was judged:\n{tail}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
