"""A provider's record of its labs: one JSON file per lab, and a lock under which slots are chosen.

Both providers keep their labs this way, each under a root of its own (the
embedded labs' /var/lib/badsum/labs, the VM labs' /var/lib/badsum/vmlabs),
so that neither takes the other's labs for its own. A lab's record is
written first, before anything of the lab exists: it reserves the lab's
slot for labs brought up at the same time, and tells `down` where the lab's
inventory is if `up` is interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from badsum.lab.spec import MAX_SLOT, STATE_ROOT, LabError, LabSpec


@dataclass(frozen=True)
class StateStore:
    root: Path
    lock_file: Path  # outside root or a dot file: every directory in root is a lab

    def file(self, lab_id: str) -> Path:
        return self.root / lab_id / "lab.json"

    def exists(self, lab_id: str) -> bool:
        """Whether anything of the lab's record is there (a half-written one too)."""
        return (self.root / lab_id).exists()

    def load(self, lab_id: str) -> dict | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.file(lab_id).read_text())
        return None

    def save(self, state: dict) -> None:
        path = self.file(state["lab_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.rename(path)

    def all(self) -> dict[str, dict]:
        found: dict[str, dict] = {}
        if self.root.is_dir():
            for d in sorted(self.root.iterdir()):
                if d.is_dir() and (state := self.load(d.name)):
                    found[d.name] = state
        return found

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_file, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def free_slot(self, lab_id: str, max_slot: int) -> int:
        """The lowest slot no other lab of this store has; LabError when every one is taken."""
        used = {st["slot"] for lid, st in self.all().items() if lid != lab_id}
        for slot in range(max_slot + 1):
            if slot not in used:
                return slot
        raise LabError("every lab slot is in use: take a lab down first (`badsum lab down --lab ID`)")


# The embedded labs' records. The lock is not in STATE_ROOT: every entry there is a lab.
EMBEDDED = StateStore(STATE_ROOT, STATE_ROOT.parent / "labs.lock")


def allocate_slot(lab_id: str, store: StateStore | None = None) -> int:
    """The lab's own slot when it has one (a lab brought up again keeps its addresses), else a free one."""
    store = store or EMBEDDED
    mine = store.load(lab_id)
    return mine["slot"] if mine else store.free_slot(lab_id, MAX_SLOT)


def check_slot_free(spec: LabSpec, store: StateStore | None = None) -> None:
    """Refuse a slot another lab has (its addresses would be this lab's too).

    Two labs brought up at once can both be offered the same free slot; with
    the same addresses on two bridges, one lab's inventory would reach the
    other lab's nodes. Called under the store's lock.
    """
    for lab_id, st in (store or EMBEDDED).all().items():
        if lab_id != spec.lab_id and st["slot"] == spec.slot:
            raise LabError(
                f"slot {spec.slot} is taken by lab {lab_id}: run `badsum lab up --lab {spec.lab_id}` without --slot "
                "(a free one is chosen; if both labs were brought up at once, just run it again)"
            )
