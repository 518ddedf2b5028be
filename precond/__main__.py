"""``python -m precond``: the ``precond`` command (see :mod:`precond.cli`)."""

import sys

from precond.cli import main

if __name__ == "__main__":
    sys.exit(main())
