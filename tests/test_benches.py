"""Every benchmark module imports, and a record carries its machine and command."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import benches
from benches.record import write_record


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules(benches.__path__)))
def test_every_benchmark_imports(name: str) -> None:
    importlib.import_module(f"benches.{name}")


def test_a_record_names_its_machine_and_command(tmp_path) -> None:
    path = write_record(tmp_path / "out" / "x.json", "x", rows=[1, 2])
    record = json.loads(path.read_text())
    assert record["bench"] == "x" and record["rows"] == [1, 2]
    machine = record["machine"]
    assert machine["cpus"] >= 1 and machine["cpu"] and machine["libraries"]["numba"]
    assert record["command"].startswith("python ") and record["time"].endswith("Z")
