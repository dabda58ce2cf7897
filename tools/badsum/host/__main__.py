"""`python3 badsum-host.pyz [--check-mode] TOOL ACTION [--options]`: one tool action, one JSON object on stdout.

Exit status 0 when the action succeeded, 2 with the reason (on stderr and in
the JSON) when it could not or failed, 3 when the kit itself crashed. --check-mode runs the action as Ansible's check
mode would (badsum.host.call): what only reads runs, what can say what it
would change says so, the rest is skipped. This is also how the fleet's
`raw` transport runs the kit, on hosts where no Ansible module can run: the
answer is always one JSON object, a crash included.
"""

import json
import sys
import traceback
from typing import List, Optional

from . import TOOLS, HostError, call


def usage() -> str:
    width = max(map(len, TOOLS))
    lines = [f"  {name:<{width}}  {tool.summary}" for name, tool in TOOLS.items()]
    head = "usage: badsum-host.pyz [--check-mode] TOOL ACTION [--options]   (TOOL --help for its actions)"
    return head + "\n\n" + "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check_mode = bool(argv) and argv[0] == "--check-mode"
    argv = argv[1:] if check_mode else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    try:
        result = call(argv[0], argv[1:], check_mode=check_mode)
    except HostError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"badsum-host {argv[0]}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not a host problem: still one JSON answer, with the traceback
        print(
            json.dumps(
                {"failed": True, "msg": f"badsum host kit crashed: {exc!r}", "exception": traceback.format_exc()}
            )
        )
        traceback.print_exc()
        return 3
    print(json.dumps(result, default=str))
    return 2 if result.get("failed") else 0  # an action that ran and failed (a rollout put back, say)


if __name__ == "__main__":
    sys.exit(main())
