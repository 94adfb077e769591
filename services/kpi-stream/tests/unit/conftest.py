"""Makes the event builders (`kpi_builders`) importable by the unit tests under --import-mode=importlib."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
