"""QA unit tests: fakes/qa_fakes (the in-memory unit of work) importable from the tests."""

from __future__ import annotations

import sys
from pathlib import Path

# fakes/, not this folder: with this folder on sys.path, `from conftest import ...` elsewhere could find this
# conftest (--import-mode=importlib inserts nothing itself).
sys.path.insert(0, str(Path(__file__).parent / "fakes"))
