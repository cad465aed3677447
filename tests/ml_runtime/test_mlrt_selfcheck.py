"""verify_build() refuses the builds and threads an outside tester showed it accepted (round 6c:
findings 1-4), and the threads that run consensus kernels refuse to run them when they flush
subnormals.

Each stand-in below is the real kernel changed only where the tester's build was: exact at
the small golden job's shapes and wrong beyond them (a reassociated batch sum from about 16
samples, a loss over many rows), blind to divergence (fastmath ``nnan``/``ninf``), flushing
subnormal weights (FTZ), or an FMA-contracted FedAvg. The slow tests at the end build the
tester's forced builds for real (a scratch copy with ``fastmath`` flags, compiled afresh).
The FTZ/DAZ tests set the bits on a thread of their own (mlrtkit.run_flushing), as a
``-ffast-math`` shared library does when it is loaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from mlrtkit import DAZ, FTZ, RC_DOWN, RC_UP, RC_ZERO, X86_64, run_flushing

import ml_runtime as mr
from ml_runtime import fedavg, fpenv, job, kernels, selfcheck

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ("linear", "softmax", "mlp")
FLUSH_MODES = {"FTZ": FTZ, "DAZ": DAZ, "FTZ+DAZ": FTZ | DAZ}
ROUNDING_MODES = {"down": RC_DOWN, "up": RC_UP, "toward zero": RC_ZERO}
SEGMENT = {"linear": "linear_segment", "softmax": "softmax_segment", "mlp": "mlp_segment"}
SETS_MXCSR = pytest.mark.skipif(
    not X86_64 or numba.config.DISABLE_JIT, reason="sets the x86 MXCSR with compiled LLVM intrinsics"
)


def _stand_in(monkeypatch: pytest.MonkeyPatch, family: str, wrap) -> None:
    """Replace the family's segment kernel with ``wrap(real, *args)``."""
    real = getattr(kernels, SEGMENT[family])
    monkeypatch.setattr(kernels, SEGMENT[family], lambda *args: wrap(real, *args))


def test_verify_build_passes_on_this_build() -> None:
    mr.verify_build()


@pytest.mark.parametrize("family", FAMILIES)
def test_verify_build_refuses_a_kernel_exact_only_below_batch_16(family: str, monkeypatch) -> None:
    """A kernel whose batch sums go another way from 16 samples on (finding 1: a ``reassoc``
    build vectorises linear's loss sum there) is refused by the batch-64 job, named."""

    def reassociated(real, w, x, y, idx, nsteps, batch, lr, *rest):
        if batch >= 16:
            lr = np.nextafter(lr, np.float32(np.inf))
        return real(w, x, y, idx, nsteps, batch, lr, *rest)

    _stand_in(monkeypatch, family, reassociated)
    with pytest.raises(mr.BuildMismatch, match=f"golden batch-64 {family} vector"):
        mr.verify_build()


@pytest.mark.parametrize("family", FAMILIES)
def test_verify_build_refuses_a_loss_off_over_many_rows(family: str, monkeypatch) -> None:
    """A kernel exact up to batch 64 but not on a bounty's many rows (compute_loss: one batch
    of every row) is refused by the loss check, named."""

    def off_over_64(real, w, x, y, idx, nsteps, batch, lr, l2, *rest):
        loss, status = real(w, x, y, idx, nsteps, batch, lr, l2, *rest)
        if batch > 64:
            loss = np.nextafter(np.float32(loss), np.float32(np.inf))
        return loss, status

    _stand_in(monkeypatch, family, off_over_64)
    with pytest.raises(mr.BuildMismatch, match=f"golden {family} loss over 256 rows"):
        mr.verify_build()


@pytest.mark.parametrize("family", FAMILIES)
def test_verify_build_refuses_a_kernel_blind_to_divergence(family: str, monkeypatch) -> None:
    """A kernel that never reports a non-finite step (finding 2: an ``nnan``/``ninf`` build
    folds the finiteness tests away) is refused by the diverging job, named."""

    def never_diverges(real, *args):
        loss, _status = real(*args)
        return loss, -1

    _stand_in(monkeypatch, family, never_diverges)
    with pytest.raises(mr.BuildMismatch, match=f"golden diverging {family} job to finite=True"):
        mr.verify_build()


@pytest.mark.parametrize("family", FAMILIES)
def test_verify_build_refuses_a_kernel_diverging_a_step_late(family: str, monkeypatch) -> None:
    """Where the job diverges is pinned, not only that it does: the verifier's re-run must
    raise NonFiniteWeights at the author's step."""
    segment, step, _root = selfcheck.PINNED_DIVERGING[family]

    def late(real, *args):
        loss, status = real(*args)
        return loss, (status + 1 if status >= 0 else status)

    _stand_in(monkeypatch, family, late)
    with pytest.raises(mr.BuildMismatch, match=f"diverging {family} job to finite=False, divergence in "
                                                 f"segment {segment} at step {step + 1}, root"):
        mr.verify_build()


@pytest.mark.parametrize("family", FAMILIES)
def test_verify_build_refuses_a_kernel_that_flushes_subnormal_weights(family: str, monkeypatch) -> None:
    """A kernel that writes subnormal weights as 0 (finding 4: FTZ) is refused by the
    subnormal job, named; the other golden jobs never make a subnormal weight."""

    def flushing(real, w, *rest):
        out = real(w, *rest)
        w[np.abs(w) < np.float32(2.0**-126)] = np.float32(0.0)
        return out

    _stand_in(monkeypatch, family, flushing)
    with pytest.raises(mr.BuildMismatch, match=f"golden subnormal {family} vector"):
        mr.verify_build()


def test_verify_build_refuses_an_fma_contracted_fedavg(monkeypatch) -> None:
    """FedAvg with each ``acc + c_i * w_i`` fused (one rounding, as an FMA: the float32 product
    is exact in float64; finding 3) computes another aggregate, which verify_build refuses."""

    def fused(updates, counts, total, out):
        coef = np.float32(counts) / np.float32(total)
        acc = np.zeros(updates.shape[1], dtype=np.float32)
        for i in range(updates.shape[0]):
            acc = (acc.astype(np.float64) + np.float64(coef[i]) * updates[i].astype(np.float64)).astype(np.float32)
        out[:] = acc
        return -1

    monkeypatch.setattr(fedavg, "fedavg_kernel", fused)
    with pytest.raises(mr.BuildMismatch, match="golden FedAvg aggregate"):
        mr.verify_build()


def test_verify_build_turns_a_crash_of_a_golden_job_into_a_mismatch(monkeypatch) -> None:
    """The tester's ``nnan`` build raised ZeroDivisionError inside softmax_segment on the
    diverging job: any exception of a golden computation is a BuildMismatch naming it."""

    def crashes(real, w, x, y, idx, nsteps, batch, lr, *rest):
        if lr > np.float32(1e30):
            raise ZeroDivisionError("division by zero")
        return real(w, x, y, idx, nsteps, batch, lr, *rest)

    _stand_in(monkeypatch, "softmax", crashes)
    with pytest.raises(mr.BuildMismatch, match=r"golden diverging softmax check failed on this build: ZeroDivisionError\("):
        mr.verify_build()


# --- FTZ / DAZ -------------------------------------------------------------------------------


@SETS_MXCSR
def test_the_probe_sees_either_flush_bit() -> None:
    assert not fpenv.flushes_subnormals()
    assert not run_flushing(0, fpenv.flushes_subnormals)
    for bits in FLUSH_MODES.values():
        assert run_flushing(bits, fpenv.flushes_subnormals)


@SETS_MXCSR
@pytest.mark.parametrize("mode", FLUSH_MODES)
def test_verify_build_refuses_a_thread_that_flushes_subnormals(mode: str) -> None:
    with pytest.raises(mr.BuildMismatch, match="flushes subnormal"):
        run_flushing(FLUSH_MODES[mode], mr.verify_build)


@SETS_MXCSR
@pytest.mark.parametrize("mode", FLUSH_MODES)
def test_the_subnormal_jobs_alone_see_a_flushing_thread(mode: str, monkeypatch) -> None:
    """Without the probe and the kernels' thread check, each family's subnormal job still runs
    to another root on a flushing thread (and verify_build refuses it): two defences, not one."""
    monkeypatch.setattr(job, "require_default_environment", lambda kernel: None)
    monkeypatch.setattr(fedavg, "require_default_environment", lambda kernel: None)
    monkeypatch.setattr(selfcheck, "flushes_subnormals", lambda: False)
    bits = FLUSH_MODES[mode]
    for family in FAMILIES:
        result = run_flushing(bits, lambda f=family: mr.run_job(selfcheck.subnormal_job(f)))
        assert result.transcript.root.hex() != selfcheck.PINNED_SUBNORMAL[family][0], family
    with pytest.raises(mr.BuildMismatch, match="golden subnormal linear vector"):
        run_flushing(bits, mr.verify_build)


@SETS_MXCSR
def test_every_consensus_kernel_refuses_a_flushing_thread() -> None:
    """Training, a verifier's re-run, a bounty's loss and FedAvg all raise SubnormalsFlushed
    before computing, which is no MLRuntimeError: the chain reads those as a verdict on the
    input (a block or TRAIN invalid, a federated round failed) and must not get one."""
    assert not issubclass(mr.SubnormalsFlushed, mr.MLRuntimeError)
    golden = selfcheck.golden_job("mlp")
    result = mr.run_job(golden)
    spec, w, x, y = selfcheck.loss_case("linear")
    calls = [
        ("mlp", lambda: mr.run_job(golden)),
        ("mlp", lambda: mr.recompute_segment(golden, 1, result.checkpoints[1])),
        ("linear", lambda: mr.compute_loss(spec, w, x, y)),
        ("FedAvg", lambda: fedavg.federated_average(*selfcheck.fedavg_case())),
    ]
    for kernel, call in calls:
        with pytest.raises(mr.SubnormalsFlushed, match=f"^the {kernel} kernel: this thread flushes"):
            run_flushing(FTZ | DAZ, call)
    assert mr.run_job(golden).transcript.root == result.transcript.root  # this thread is untouched


# --- the rounding mode -----------------------------------------------------------------------


@SETS_MXCSR
def test_the_probe_sees_each_rounding_mode_and_not_the_flush_bits() -> None:
    assert not fpenv.rounds_otherwise()
    assert not run_flushing(FTZ | DAZ, fpenv.rounds_otherwise)
    for bits in ROUNDING_MODES.values():
        assert run_flushing(bits, fpenv.rounds_otherwise)
        assert not run_flushing(bits, fpenv.flushes_subnormals)


@SETS_MXCSR
@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_every_consensus_kernel_refuses_a_thread_that_rounds_otherwise(mode: str) -> None:
    """retest53's F1: a thread whose rounding control is not to-nearest passed the FTZ/DAZ
    check, re-ran an honest segment to other bits and refused it (SegmentMismatch: an honest
    author accused). Every kernel entry now raises RoundingChanged first (a
    FloatEnvironmentChanged, no MLRuntimeError: no verdict), and verify_build refuses."""
    assert issubclass(mr.RoundingChanged, mr.FloatEnvironmentChanged)
    assert not issubclass(mr.FloatEnvironmentChanged, mr.MLRuntimeError)
    golden = selfcheck.golden_job("softmax")
    result = mr.run_job(golden)
    spec, w, x, y = selfcheck.loss_case("mlp")
    calls = [
        ("softmax", lambda: mr.run_job(golden)),
        ("softmax", lambda: mr.recompute_segment(golden, 1, result.checkpoints[1])),
        ("mlp", lambda: mr.compute_loss(spec, w, x, y)),
        ("FedAvg", lambda: fedavg.federated_average(*selfcheck.fedavg_case())),
    ]
    for kernel, call in calls:
        with pytest.raises(mr.RoundingChanged, match=f"^the {kernel} kernel: this thread rounds"):
            run_flushing(ROUNDING_MODES[mode], call)
    with pytest.raises(mr.BuildMismatch, match=r"^this thread rounds float32 results otherwise"):
        run_flushing(ROUNDING_MODES[mode], mr.verify_build)


@SETS_MXCSR
@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_a_segment_rerun_rounding_otherwise_computes_other_bits(mode: str, monkeypatch) -> None:
    """Why the check: without it, an honest segment re-run under another rounding mode does not
    reproduce the author's checkpoint (the false accusation of retest53's F1)."""
    monkeypatch.setattr(job, "require_default_environment", lambda kernel: None)
    golden = selfcheck.golden_job("softmax")
    result = mr.run_job(golden)
    _, here = mr.recompute_segment(golden, 1, result.checkpoints[1])
    _, there = run_flushing(ROUNDING_MODES[mode], lambda: mr.recompute_segment(golden, 1, result.checkpoints[1]))
    assert here.tobytes() == result.checkpoints[2].tobytes()
    assert there.tobytes() != result.checkpoints[2].tobytes()


@SETS_MXCSR
def test_rerun_pool_threads_started_by_a_flushing_thread_refuse(monkeypatch) -> None:
    """A kept rerun pool's threads inherit MXCSR from the thread that started them; a pool made
    on a flushing thread refuses every segment (here a private pool registry, shut after)."""
    monkeypatch.setattr(job, "_POOLS", {})
    golden = selfcheck.golden_job("softmax")
    result = mr.run_job(golden)
    try:
        with pytest.raises(mr.SubnormalsFlushed):
            run_flushing(FTZ, lambda: mr.recompute_segments(golden, [0, 1, 2], result.checkpoints[:3], threads=2))
    finally:
        for pool in job._POOLS.values():
            pool.shutdown()


@SETS_MXCSR
def test_block_worker_threads_of_a_flushing_loop_refuse() -> None:
    """The node runs its blocks on the event loop's worker threads (asyncio.to_thread in
    node/service.py), which inherit the loop thread's MXCSR: with FTZ there, a block's
    training refuses instead of committing other bits."""
    golden = selfcheck.golden_job("linear")

    async def author() -> object:
        return await asyncio.to_thread(mr.run_job, golden)

    with pytest.raises(mr.SubnormalsFlushed):
        run_flushing(DAZ, lambda: asyncio.run(author()))


# --- the tester's forced builds, compiled for real (slow: each compiles every kernel) ------------

FORCED = {
    # name: (fastmath flags, files changed); each is a build the old verify_build accepted.
    "reassoc": ("{'reassoc'}", ("kernels.py", "fedavg.py", "f32math.py")),
    "nnan_ninf": ("{'nnan','ninf'}", ("kernels.py", "fedavg.py", "f32math.py")),
    "fedavg_contract": ("{'contract'}", ("fedavg.py",)),
}


def _forced_copy(root: Path, flags: str, files: tuple[str, ...]) -> Path:
    """A scratch copy of ml_runtime with ``fastmath=flags`` on every kernel of ``files`` (the
    tester's mkforced.sh)."""
    dst = root / "ml_runtime"
    shutil.copytree(REPO / "ml_runtime", dst, ignore=shutil.ignore_patterns("__pycache__"))
    for name in files:
        path = dst / name
        text = path.read_text()
        if name == "f32math.py":
            for fn in ("exp32", "log32"):
                text = text.replace(f"njit(cache=True, nogil=True)({fn})", f"njit(fastmath={flags}, cache=True, nogil=True)({fn})")
        else:
            text = text.replace("@njit(cache=True, nogil=True", f"@njit(fastmath={flags}, cache=True, nogil=True")
        assert text != path.read_text(), name
        path.write_text(text)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", FORCED)
def test_verify_build_refuses_the_testers_forced_builds(name: str, tmp_path: Path) -> None:
    flags, files = FORCED[name]
    root = _forced_copy(tmp_path / "src", flags, files)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(root))
    env.pop("NUMBA_DISABLE_JIT", None)
    script = (
        "import ml_runtime\n"
        f"assert ml_runtime.__file__.startswith({str(root)!r})\n"
        "try:\n    ml_runtime.verify_build()\nexcept ml_runtime.BuildMismatch as e:\n    print('REFUSED', e)\n"
        "else:\n    print('PASSED')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True,
                         text=True, check=True, timeout=600)
    assert out.stdout.startswith("REFUSED"), out.stdout
