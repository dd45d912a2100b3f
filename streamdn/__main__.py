"""`python -m streamdn ...`: the same as the `streamdn` command."""

import sys

from .cli import main

sys.exit(main())
