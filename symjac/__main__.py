"""``python -m symjac`` is the same program as the ``symjac`` console script."""

import sys

from .cli import main

sys.exit(main())
