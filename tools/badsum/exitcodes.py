"""The exit status of every `badsum` command: one table, shown by `badsum --help`.

    0   ok: done, and nothing to report
    1   finding: done, and it found something - the table differs from the
        incident's, the audit found exposed hosts, an exercise's check failed
    2   failure: it could not be done - a run, a cell or a host failed, a lab
        did not come up
    64  usage: the command line or a setting is wrong (EX_USAGE of
        sysexits.h: an unknown option, a bad value, an option that does not
        apply, a run that does not exist); refused before anything changed

Each command's --help says which of them it uses and what each means there.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    FINDING = 1
    FAILURE = 2
    USAGE = 64


MEANING = {
    Exit.OK: "ok: done, and nothing to report",
    Exit.FINDING: "finding: done, and it found something (e.g. the table differs from the incident's, exposed hosts)",
    Exit.FAILURE: "failure: it could not be done (a run, a cell or a host failed, a lab did not come up)",
    Exit.USAGE: "usage: a wrong option, value or setting; refused before anything changed",
}


class UsageError(Exception):
    """Bad input found before anything changed: the message names the option or variable, the value and
    what is allowed; the command exits Exit.USAGE."""
