"""``python -m xpnn.cli`` runs the ``xpnn`` command."""

import sys

from xpnn.cli import main

sys.exit(main())
