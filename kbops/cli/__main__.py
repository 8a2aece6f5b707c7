"""``python -m kbops.cli``: the same as the ``kbops`` console script."""

import sys

from kbops.cli import main

sys.exit(main())
