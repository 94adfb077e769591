"""Makes this folder's helpers (`asterisk_records`) and the KPI stream's test scenarios (`scenarios`: isolated
topics, a worker of its own) importable under --import-mode=importlib."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "services" / "kpi-stream" / "tests" / "integration"))
