"""The files and Python names that docs/architecture.md and README.md point readers to exist.

Both documents are read to judge the code (docs/architecture.md says it is "written from the
code"), so a path or a module that was renamed or deleted reads as a false claim. Checked,
without importing anything (a fraction of a second):

- every ``package/.../file.ext`` path under one of the repository's own top-level directories
  (paths elsewhere, such as ``<base>/chains/<id>/keystore`` or a benchmark's output directory,
  are not files of the repository);
- every backticked dotted name that starts with a package (``chain.proofs.verify_opening``,
  ``node.voter_record.RecordWriter``): its module file exists and, if the name goes on past the
  module, the module defines the next name at its top level (a def, a class, an assignment or
  an import).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("docs/architecture.md", "README.md")
TOP = ("benches", "chain", "consensus", "docs", "genesis", "ml_runtime", "node", "rpc", "tests")
PACKAGES = ("benches", "chain", "consensus", "genesis", "ml_runtime", "node", "rpc")

# A path may spell several files as a shell brace list (``tests/chain/test_{codec,block}_mutants.py``);
# one with a ``<placeholder>`` names a pattern, not a file, and is left out.
_PATH = re.compile(r"(?<![\w./<>-])((?:" + "|".join(TOP) + r")/(?:[\w./-]|\{[\w,]*\})*[\w}])(<?)")
_BRACES = re.compile(r"\{([\w,]*)\}")
_DOTTED = re.compile(r"`((?:" + "|".join(PACKAGES) + r")(?:\.[A-Za-z_]\w*)+)(?:\(\))?`")


def _expand(path: str) -> list[str]:
    match = _BRACES.search(path)
    if match is None:
        return [path]
    head, tail = path[: match.start()], path[match.end() :]
    return [p for choice in match.group(1).split(",") for p in _expand(head + choice + tail)]


def _paths(text: str) -> set[str]:
    return {p for m in _PATH.finditer(text) if not m.group(2) for p in _expand(m.group(1))}


@functools.cache
def _top_level_names(module: Path) -> frozenset[str]:
    names = set()
    for node in ast.parse(module.read_text(), str(module)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names)


def _dotted_problem(name: str) -> str | None:
    """Why ``name`` names nothing in the repository, or None."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.is_file():
            rest = parts[cut:]
            if rest and rest[0] not in _top_level_names(module):
                return f"{module.relative_to(ROOT)} defines no {rest[0]}"
            return None
    return f"no module {parts[0]}"


@pytest.mark.parametrize("doc", DOCS)
def test_named_paths_exist(doc: str) -> None:
    missing = sorted(p for p in _paths((ROOT / doc).read_text()) if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"{doc} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS)
def test_named_python_names_exist(doc: str) -> None:
    text = (ROOT / doc).read_text()
    problems = sorted({f"`{m.group(1)}`: {why}" for m in _DOTTED.finditer(text) if (why := _dotted_problem(m.group(1)))})
    assert not problems, f"{doc} names Python objects that do not exist: {problems}"


def test_the_checks_see_a_wrong_name() -> None:
    """The two checks find what they look for (a regex that matched nothing would pass)."""
    assert _paths("see `chain/proofs.py` and chain/no_such_module.py") == {"chain/proofs.py", "chain/no_such_module.py"}
    assert _paths("`tests/chain/test_{codec,block}_mutants.py`, `tests/test_<name>.py`") == {
        "tests/chain/test_codec_mutants.py", "tests/chain/test_block_mutants.py",
    }
    assert _dotted_problem("chain.proofs.verify_opening") is None
    assert _dotted_problem("chain.proofs.no_such_function") == "chain/proofs.py defines no no_such_function"
    assert _dotted_problem("chain.no_such_module") == "chain/__init__.py defines no no_such_module"
