"""`python3 -m tests`: set up what is missing, then run the test suite.

Extra arguments go to pytest (e.g. `python3 -m tests -k network`).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin.bootstrap import ROOT, ensure_environment  # noqa: E402

ensure_environment(display=True)

import pytest  # noqa: E402

os.chdir(ROOT)
exit_code = pytest.main(["-q", *sys.argv[1:]])
sys.exit(int(exit_code))
