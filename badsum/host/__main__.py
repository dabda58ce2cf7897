"""`python3 badsum-host.pyz TOOL ACTION [--options]`: one tool action, one JSON object on stdout.

Exit status 0 when the action succeeded, 2 with the reason (on stderr and in
the JSON) when it could not.
"""

from __future__ import annotations

import json
import sys

from . import TOOLS, HostError, call


def usage() -> str:
    width = max(map(len, TOOLS))
    lines = [f"  {name:<{width}}  {tool.summary}" for name, tool in TOOLS.items()]
    return "usage: badsum-host.pyz TOOL ACTION [--options]   (TOOL --help for its actions)\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    try:
        result = call(argv[0], argv[1:])
    except HostError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"badsum-host {argv[0]}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
