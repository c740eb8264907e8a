#!/usr/bin/env python3
"""Start Twin: `python3 app.py [city-folder-or-scene-file] [--screenshot out.png --size 1600x1000]`.

The first run sets up `.venv` (see twin/bootstrap.py) and then continues
inside it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from twin.bootstrap import ensure_environment  # noqa: E402

if __name__ == "__main__":
    ensure_environment(display=True)
    from twin.ui.app import main  # noqa: E402

    sys.exit(main(sys.argv[1:]))
