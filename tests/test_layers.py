"""The packages import one way (docs/architecture.md §1): ml_runtime <- chain <- genesis <- consensus <- rpc <- node."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["ml_runtime", "chain", "genesis", "consensus", "rpc", "node"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(ORDER)


@pytest.mark.parametrize("package", ORDER)
def test_imports_point_one_way(package: str) -> None:
    allowed = set(ORDER[: ORDER.index(package) + 1])
    wrong = {
        f"{path.relative_to(ROOT)} imports {sorted(_imports(path) - allowed)}"
        for path in (ROOT / package).rglob("*.py")
        if _imports(path) - allowed
    }
    assert not wrong, f"{package} may import only {sorted(allowed)}: {sorted(wrong)}"
