"""Where a benchmark's figures go: one JSON file under bench-results/, with the machine and
the command that produced them.

A figure without its machine and command cannot be compared or reproduced: every record
carries the CPU model and core count, the load average when it was written (these machines
are shared), the Python and library versions that matter to the hot paths, the exact
command line, and the time.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("numpy", "numba", "msgspec", "pynacl", "aiohttp", "plyvel", "noiseprotocol", "torch", "matplotlib")


def describe_machine() -> dict[str, Any]:
    """CPU model, cores, load, Python and the versions of the libraries the benches time."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "libraries": versions,
    }


def write_record(path: Path, bench: str, *, command: str | None = None, **fields: Any) -> Path:
    """Write ``fields`` as ``bench``'s record to ``path`` (its folder is made), with the
    machine, the command (``command``, else this process's command line) and the time;
    print where it went and return the path."""
    record = {
        "bench": bench,
        **fields,
        "machine": describe_machine(),
        "command": command or compute_command(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def check_out_folder(out: Path, names: Sequence[str]) -> str | None:
    """Why the files ``names`` could not be written in the folder ``out``, or None (the folder is
    made). Called before measuring: a run that fails on its last write loses minutes of figures.
    A name that is a folder, an existing file this user cannot write, and a folder it cannot
    create files in are refused (root may write anywhere: only the first then applies)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot make the folder: {exc.strerror or exc}"
    for name in names:
        path = out / name
        if path.is_dir():
            return f"{path} is a folder, not a file"
        if path.exists() and not os.access(path, os.W_OK):
            return f"{path} is not writable"
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        return f"cannot write in the folder: {exc.strerror or exc}"
    return None


def compute_command() -> str:
    """The command line as typed: ``python -m benches.x ...`` for a module run with -m."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None and spec.name else ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
