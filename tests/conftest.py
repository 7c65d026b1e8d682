"""Test setup: put the project root on sys.path so tests import ``calc`` and ``data``.

Frame builders for tests live in :mod:`tests.factories` (``from factories import make_frames``).
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_TESTS = Path(__file__).resolve().parent
for p in (str(_ROOT), str(_TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)
