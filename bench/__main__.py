"""``python -m bench run | list | report`` (see :mod:`bench.cli`)."""

import sys

from bench.cli import main

sys.exit(main())
