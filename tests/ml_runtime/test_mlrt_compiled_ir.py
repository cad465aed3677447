"""The compiled kernels obey docs/architecture.md §3 at the LLVM level, and are cached on disk.

Compiles every kernel afresh in a subprocess (numba refuses to show IR of cached code)
and inspects the IR of the compiled functions, outside the CPython wrappers (which
unbox float32 arguments through PyFloat_AsDouble — exact — and box results): no double
arithmetic, no fast-math flags, no fused multiply-add, no libm calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numba
import pytest

import ml_runtime as mr
from ml_runtime import kernels
from ml_runtime.selfcheck import golden_job

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import json, math, re
import numpy as np
from numba import njit
import ml_runtime as mr
from ml_runtime import kernels, selfcheck

@njit(fastmath=True)
def control(x):  # breaks every rule, to show the checks can fail
    return math.exp(x * 0.5) + x * x

control(np.float32(1.0))
# warm_up compiles the kernels with the runtime's argument types; its last call, the batch PRF
# (ml_runtime/prf.py), is not inspected here, and compiling it afresh took 22 of the 35 s.
selfcheck.batch_indices = lambda *args: None
mr.warm_up()
from ml_runtime import fedavg, fpenv
report = {}
names = ["linear_segment", "softmax_segment", "mlp_segment",
         "linear_forward", "softmax_forward", "mlp_forward"]
others = {"control": control, "fedavg_kernel": fedavg.fedavg_kernel, "keeps_subnormals": fpenv.keeps_subnormals,
          "rounds_to_nearest": fpenv.rounds_to_nearest}
for name in names + list(others):
    fn = others[name] if name in others else getattr(kernels, name)
    ir = "".join(fn.inspect_llvm().values())
    body, keep = [], False
    for line in ir.splitlines():
        if line.startswith("define"):
            keep = "@_ZN7cpython" not in line  # skip the CPython wrapper
        if keep:
            body.append(line)
    text = "\n".join(body)
    report[name] = {
        "lines": len(body),
        "double_ops": re.findall(r"= (?:fadd|fsub|fmul|fdiv|fpext|fptrunc|sitofp|uitofp|call)"
                                 r"[^\n]*\bdouble\b", text),
        "fast_flags": re.findall(r"\b(?:fast|contract|reassoc|nnan|ninf|afn|arcp)\b(?= )", text),
        "fma": re.findall(r"@llvm\.fma|@llvm\.fmuladd", text),
        "libm": re.findall(r"@(?:exp|expf|log|logf|llvm\.exp|llvm\.log|tanh)[\w.]*\(", text),
        # noalias attributes on the step helper's definition: numba puts two on every
        # function (its return and exception pointers); kernels._NoAlias adds the arrays'.
        "update_noalias": [l.count("noalias") for l in body
                           if l.startswith("define") and "_update_t" in l],
    }
print(json.dumps(report))
"""

_RESTART = r"""
import json
import ml_runtime as mr
from ml_runtime import kernels, selfcheck
selfcheck.batch_indices = lambda *args: None  # as in _SCRIPT: the PRF is not compiled there
mr.warm_up()
ks = [kernels.linear_segment, kernels.softmax_segment, kernels.mlp_segment,
      kernels.linear_forward, kernels.softmax_forward, kernels.mlp_forward]
print(json.dumps([sum(sum(k.stats.cache_hits.values()) for k in ks),
                  sum(sum(k.stats.cache_misses.values()) for k in ks)]))
"""


def test_kernels_ir_is_float32_without_fastmath() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        env.pop("NUMBA_DISABLE_JIT", None)
        out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                             text=True, check=True, timeout=240)
        # A restarted node loads every kernel from the cache the first run wrote.
        again = subprocess.run([sys.executable, "-c", _RESTART], env=env, capture_output=True,
                               text=True, check=True, timeout=240)
    hits, misses = json.loads(again.stdout.strip().splitlines()[-1])
    assert misses == 0 and hits >= 6
    report = json.loads(out.stdout.strip().splitlines()[-1])
    control = report.pop("control")
    assert control["double_ops"] and control["fast_flags"] and control["libm"]
    # FedAvg is a consensus kernel too (its aggregate is a model version in state), and a
    # fast-math probe of FTZ/DAZ or the rounding mode (ml_runtime.fpenv) could be folded into a
    # constant answer.
    for name in ("fedavg_kernel", "keeps_subnormals", "rounds_to_nearest"):
        r = report.pop(name)
        assert r["lines"] > 0 and r["double_ops"] == [] and r["fast_flags"] == [] and r["fma"] == [], (name, r)
    assert len(report) == 6
    for name, r in report.items():
        assert r["lines"] > 100, name
        assert r["double_ops"] == [], (name, r["double_ops"][:3])
        assert r["fast_flags"] == [], (name, r["fast_flags"][:3])
        assert r["fma"] == [], name
        assert r["libm"] == [], name
        if name.endswith("_segment"):  # the step helpers carry noalias (kernels._NoAlias)
            assert r["update_noalias"] and min(r["update_noalias"]) > 2, (name, r["update_noalias"])


JIT_ONLY = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: kernels run as Python")


@JIT_ONLY
def test_warm_up_covers_the_runtime_argument_types() -> None:
    """After warm_up, training and predict reuse the one compiled specialisation each."""
    mr.warm_up()
    for family in ("linear", "softmax", "mlp"):
        job = golden_job(family)
        mr.run_job(job)
        mr.predict(job.spec, job.weights, job.x.copy())
    for name in ("linear_segment", "softmax_segment", "mlp_segment",
                 "linear_forward", "softmax_forward", "mlp_forward"):
        assert len(getattr(kernels, name).signatures) == 1, name


@JIT_ONLY
def test_every_kernel_releases_the_gil() -> None:
    """Each compiled function runs with the GIL released (``nogil=True``).

    A block's training runs in a worker thread; a kernel that keeps the GIL stops the
    node's event loop for the whole segment (issue 7 item 3: about 1 s for a
    maximum-weight job). ``benches/health.py`` measures the effect on RPC latency.
    """
    from numba.core.registry import CPUDispatcher

    from ml_runtime import f32math

    found = {f"{mod.__name__}.{name}": fn for mod in (kernels, f32math)
             for name, fn in vars(mod).items() if isinstance(fn, CPUDispatcher)}
    assert len(found) >= 13, sorted(found)  # 11 kernels and helpers + exp32/log32
    kept = sorted(name for name, fn in found.items() if not fn.targetoptions.get("nogil"))
    assert kept == [], f"kernels that keep the GIL: {kept}"
