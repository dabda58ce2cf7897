"""Sub-commands beyond `lab`: filled in by the harness modules."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    return None
