"""``python -m pipes``: the ``pipes`` command (how ``--workers`` starts its worker processes)."""

import sys

from pipes.cli import main

sys.exit(main())
