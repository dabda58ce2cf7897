"""What every lab provider does: bring a lab up, take it down, say what exists, say where its inventory is.

Two providers stand behind it: the embedded lab (badsum.lab.provider:
namespaces on this machine, the default) and the QEMU lab (badsum.vm.provider:
guests booting a lab kernel). `badsum lab` picks one by `--provider` for `up`
and by the lab's id for everything else (a lab id belongs to one provider);
nothing else about a provider is known to the command.

A request names every option `lab up` has; a provider lists the ones it
takes (`takes`), and the command refuses the others before anything changes,
so an option is never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar, Protocol

from badsum.lab.cgroups import Limits


@dataclass(frozen=True)
class UpRequest:
    lab_id: str
    inventory: Path  # where the lab's inventory is written
    hosts: int | None = None
    remake: bool = False
    slot: int | None = None
    user: str | None = None
    student: Path | None = None
    limits: Limits | None = None
    kernel: str | None = None
    init: str | None = None

    def given(self) -> set[str]:
        """The options this request sets (beyond the lab and its inventory, which every provider takes)."""
        return {
            f.name
            for f in fields(self)
            if f.name not in ("lab_id", "inventory") and getattr(self, f.name) not in (None, False)
        }


class LabProvider(Protocol):
    name: ClassVar[str]
    takes: ClassVar[frozenset[str]]  # the UpRequest options it acts on
    requires: ClassVar[frozenset[str]]  # those of them it cannot do without

    def owns(self, lab_id: str) -> bool:
        """Whether anything of a lab of this provider by that id exists (a record, or its leftovers)."""

    def labs(self) -> list[str]:
        """The ids of this provider's labs that have a record."""

    def up(self, request: UpRequest) -> str:
        """Bring the lab up (a no-op when it is up as asked); the sentence to print."""

    def down(self, lab_id: str) -> str:
        """Remove everything of the lab; succeeds when nothing is there."""

    def status(self, lab_id: str | None = None) -> list[dict]:
        """What exists, lab by lab (each entry: lab_id, provider, healthy, state_file, ...)."""

    def inventory(self, lab_id: str) -> Path | None:
        """Where the lab's inventory is, when the lab has a record."""
