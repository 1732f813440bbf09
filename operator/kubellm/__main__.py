"""``python -m kubellm`` runs the CLI."""

import sys

from kubellm.cli import main

sys.exit(main())
