# SPDX-License-Identifier: GPL-2.0-only
"""What the controller-side checks share: the settings' values as Ansible resolves them."""

from __future__ import annotations

from ansible.errors import AnsibleError


def badsum_names(source):
    """The badsum_* variables a play (or a host) has: each must be one badsum knows (badsum.specs.unknown)."""
    return {name for name in source if name.startswith("badsum_")}


def resolve(templar, names, source, problems, where=""):
    """Each name that `source` defines, templated; a value that cannot be is a problem, not an exception."""
    values = {}
    for name in names:
        if name not in source:
            continue
        try:
            values[name] = templar.template(source[name])
        except AnsibleError as exc:
            problems.append(f"{name}{where} cannot be resolved: {exc.message}")
    return values


def refuse(result, problems, consequence):
    """Fail the task with every problem listed at once, and what that means for the run."""
    result["failed"] = True
    result["msg"] = f"{len(problems)} setting(s) cannot be used; {consequence}:\n" + "\n".join(
        f"  - {p}" for p in problems
    )
    result["problems"] = problems
    return result
