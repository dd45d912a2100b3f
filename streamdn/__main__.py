"""`python -m streamdn ...`: the same as the `streamdn` command (Ctrl-C at any moment: one line,
exit code 130)."""

import sys

try:
    from streamdn.cli import main
except KeyboardInterrupt:
    print("streamdn: interrupted.", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
