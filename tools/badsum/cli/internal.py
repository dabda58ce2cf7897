"""Commands only the kit itself calls (playbooks, the workshop's service): they work, but `--help` omits them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from badsum import hostkit
from badsum.analysis.records import write_run_info
from badsum.cli.common import command
from badsum.exitcodes import Exit


def cmd_run_info(args: argparse.Namespace) -> Exit:
    path = write_run_info(args.run_dir, json.loads(sys.stdin.read()))
    print(json.dumps({"run_info": str(path)}))
    return Exit.OK


def cmd_hostkit(args: argparse.Namespace) -> Exit:
    changed = hostkit.write(args.out)
    print(json.dumps({"path": str(args.out), "changed": changed}))
    return Exit.OK


def register(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "run-info",
        cmd_run_info,
        help="record a run (JSON on stdin) as RUN_DIR/run.json; experiment.yml calls it",
        exits={Exit.OK: "recorded"},
        internal=True,
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p = command(
        sub,
        "hostkit",
        cmd_hostkit,
        help="build the host kit (badsum-host.pyz) into a file; `python3 OUT --help` lists its tools",
        exits={Exit.OK: "written (or already the same)"},
        internal=True,
    )
    p.add_argument("out", type=Path, metavar="OUT", help="where to write badsum-host.pyz")
