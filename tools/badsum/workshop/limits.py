"""What each seat's lab may use at once, which the kernel enforces (badsum.lab.cgroups): defaults from this machine.

A seat gets an equal part of the machine: of its memory (three quarters of
it shared out, at most MAX_MEMORY each), of its tasks (a quarter of
pid_max and threads-max shared out, at most MAX_PIDS each), and an equal
CPU weight. The service works for every seat: its CPU weight is theirs
added up, so the dashboard and everyone's runs go on while one seat burns
its share. Every value is checked before anything of the room is made.
"""

from __future__ import annotations

from pathlib import Path

from badsum.lab.cgroups import CPU_WEIGHT_RANGE, Limits, limitable, parse_size
from badsum.lab.spec import MIN_LAB_MEMORY, MIN_LAB_PIDS, LabError

MAX_MEMORY = 2 * 2**30
MAX_PIDS = 1024
MEMORY_SHARE = 0.75  # of the machine's memory, for all the labs together
TASK_SHARE = 0.25  # of the machine's pid_max / threads-max, for all the labs together
CPU_WEIGHT = 100


def machine_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise LabError("/proc/meminfo has no MemTotal")


def machine_tasks() -> int:
    return min(int(Path(f"/proc/sys/kernel/{name}").read_text()) for name in ("pid_max", "threads-max"))


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def plan(
    students: int,
    pids: str | None = None,
    memory: str | None = None,
    cpu_weight: str | None = None,
    total_memory: int | None = None,
    total_tasks: int | None = None,
    available: set[str] | None = None,
) -> Limits:
    """Each seat's limits: the options given (checked), the defaults for this machine otherwise."""
    total_memory = total_memory or machine_memory()
    total_tasks = total_tasks or machine_tasks()
    problems = []
    most_memory = int(total_memory * MEMORY_SHARE / students)
    most_pids = int(total_tasks * TASK_SHARE / students)
    mem = min(MAX_MEMORY, most_memory)
    if memory is not None:
        try:
            mem = parse_size(memory)
        except ValueError as exc:
            problems.append(f"--lab-memory {memory}: {exc}")
        else:
            if not MIN_LAB_MEMORY <= mem <= most_memory:
                problems.append(
                    f"--lab-memory {memory}: allowed: {_mib(MIN_LAB_MEMORY)} to {_mib(most_memory)} per seat "
                    f"({students} seats share {MEMORY_SHARE:.0%} of this machine's {_mib(total_memory)})"
                )
    elif mem < MIN_LAB_MEMORY:
        problems.append(
            f"--students {students}: each seat would have {_mib(mem)} of memory, less than {_mib(MIN_LAB_MEMORY)} "
            f"(this machine has {_mib(total_memory)}): fewer students, or a bigger machine"
        )
    tasks = min(MAX_PIDS, most_pids)
    if pids is not None:
        if not str(pids).isdigit() or not MIN_LAB_PIDS <= int(pids) <= most_pids:
            problems.append(
                f"--lab-pids {pids}: allowed: a whole number from {MIN_LAB_PIDS} to {most_pids} "
                f"({students} seats share {TASK_SHARE:.0%} of this machine's {total_tasks} tasks)"
            )
        else:
            tasks = int(pids)
    weight = CPU_WEIGHT
    if cpu_weight is not None:
        low, high = CPU_WEIGHT_RANGE
        if not str(cpu_weight).isdigit() or not low <= int(cpu_weight) <= high:
            problems.append(f"--lab-cpu-weight {cpu_weight}: allowed: a whole number from {low} to {high} (100: equal)")
        else:
            weight = int(cpu_weight)
    missing = {"pids", "memory", "cpu"} - (limitable() if available is None else available)
    if missing:
        problems.append(
            f"this machine's cgroups have no {', '.join(sorted(missing))} controller: no seat could be held"
        )
    if problems:
        raise LabError("; ".join(problems))
    return Limits(pids=tasks, memory=mem, cpu_weight=weight)


def service(students: int, seat: Limits) -> Limits:
    """The service's share: what every seat weighs, added up (it runs everyone's playbooks and the dashboard)."""
    return Limits(cpu_weight=min(CPU_WEIGHT_RANGE[1], (seat.cpu_weight or CPU_WEIGHT) * students))


def lab_up_args(limits: Limits) -> list[str]:
    """The same limits as `badsum lab up` options."""
    return [
        *(["--pids-max", str(limits.pids)] if limits.pids else []),
        *(["--memory-max", str(limits.memory)] if limits.memory else []),
        *(["--cpu-weight", str(limits.cpu_weight)] if limits.cpu_weight else []),
    ]


def describe(limits: Limits) -> str:
    return f"{limits.pids} tasks, {_mib(limits.memory or 0)} of memory, CPU weight {limits.cpu_weight}"
