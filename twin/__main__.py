"""``python -m twin`` runs the command line."""

import sys

from twin.cli.main import main

sys.exit(main())
