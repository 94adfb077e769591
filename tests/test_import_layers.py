"""The floor plan as a check: which Callstream packages each package's runtime code (`src/`) may import.

libs/ at the bottom (contracts, then core, then the dev tooling), the services side by side on them, apps/ on top
(docs/architecture.md). Every import statement is read from the source (AST), those inside functions too, so a
lazy import cannot hide a dependency on a higher floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBS = {"callstream", "callstream_core"}
SERVICES = {"callstream_ingest", "callstream_routing", "callstream_kpi", "callstream_qa", "callstream_hr"}
APPS = {"callstream_cli", "callstream_simulator"}
FIRST_PARTY = LIBS | {"callstream_devtools"} | SERVICES | APPS

# The Callstream packages each source root may import besides its own.
ALLOWED: dict[str, set[str]] = {
    "libs/contracts/src": {"callstream"},
    "libs/core/src": LIBS,
    "libs/devtools/src": LIBS,  # starts services as processes (python -m), never imports them
    # The ARI bridge is a client of the routing service: it asks routing's gRPC API (callstream_routing.client,
    # .grpc_router) and reads routing's domain types. The other services know each other only by topic.
    "services/ingest/src": LIBS | {"callstream_routing"},
    "services/routing/src": LIBS,
    "services/kpi-stream/src": LIBS,
    "services/qa/src": LIBS,
    "services/hr/src": LIBS,
    "apps/simulator/src": LIBS | {"callstream_routing"},  # its in-process router is routing's domain
    "apps/cli/src": FIRST_PARTY,
}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages `path` imports (absolute imports only: a relative one stays in its package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def own_packages(src: Path) -> set[str]:
    return {child.name for child in src.iterdir() if child.is_dir() and (child / "__init__.py").exists()}


def test_every_workspace_package_has_a_floor() -> None:
    """A new package under libs/, services/ or apps/ must be placed in ALLOWED, or it would go unchecked."""
    roots = {str(src.relative_to(ROOT)) for floor in ("libs", "services", "apps")
             for src in ROOT.glob(f"{floor}/*/src")}
    assert roots == set(ALLOWED)


@pytest.mark.parametrize("src", sorted(ALLOWED))
def test_src_imports_only_lower_floors(src: str) -> None:
    root = ROOT / src
    allowed = ALLOWED[src] | own_packages(root)
    wrong = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in root.rglob("*.py")
        for name in imported_packages(path) & FIRST_PARTY - allowed
    )
    assert not wrong, "imports across the floor plan (docs/architecture.md):\n" + "\n".join(wrong)


def test_the_check_sees_a_lazy_import(tmp_path: Path) -> None:
    """The scan finds an import inside a function, the way a service could reach the dev tooling unnoticed."""
    module = tmp_path / "sneaky.py"
    module.write_text("def start() -> None:\n    from callstream_devtools.local_kafka import free_port\n")
    assert imported_packages(module) == {"callstream_devtools"}
