"""`python -m streamdn ...`: the same as the `streamdn` command."""

import sys

from streamdn.cli import main

sys.exit(main())
