"""``python -m stellarnet`` runs the CLI."""

import sys

from stellarnet.cli import main

sys.exit(main())
