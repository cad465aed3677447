"""Static rules of the package: a leaf (numpy + numba only) with no forbidden calls."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import ml_runtime

PKG = Path(ml_runtime.__file__).resolve().parent
ALLOWED_THIRD_PARTY = {"numpy", "numba"}
CONSENSUS_MODULES = ["kernels.py", "twins.py", "f32math.py", "prf.py", "job.py", "transcript.py", "fpenv.py"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_imports_only_stdlib_numpy_numba() -> None:
    for path in sorted(PKG.glob("*.py")):
        for name in _imports(path):
            ok = name in sys.stdlib_module_names or name in ALLOWED_THIRD_PARTY or name in {
                "ml_runtime", "__future__"}
            assert ok, f"{path.name} imports {name}"


def test_no_forbidden_calls_on_the_consensus_path() -> None:
    for name in CONSENSUS_MODULES:
        tree = ast.parse((PKG / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp):
                assert not isinstance(node.op, ast.MatMult), f"{name}: BLAS matmul"
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"random", "dot", "matmul", "exp", "log", "tanh",
                                         "prange", "einsum"}, f"{name}: .{node.attr}"
            if isinstance(node, ast.keyword):
                assert node.arg not in {"fastmath", "parallel"}, f"{name}: {node.arg}="
