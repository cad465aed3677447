"""Training jobs: validation, execution, segment re-execution and validator sampling.

The proof-of-learning scheme follows Jia et al., "Proof-of-Learning: Definitions and
Practice" (IEEE S&P 2021): the prover (block author) commits to a checkpoint every
``segment_len`` steps; a verifier re-executes a few segments chosen unpredictably and
compares. Here every step is bit-exact (docs/architecture.md §3), so "compare" means equal hashes,
with no tolerance to tune.

Divergence is a defined outcome: when any updated weight, or the running sum of the
segment's step losses, is not finite (overflow, inf - inf ...), the segment stops there
(ml_runtime.kernels: so no entry ever commits a non-finite mean loss). :func:`run_job` then returns a
:class:`JobResult` with ``finite=False`` whose checkpoints and transcript end at the last
finite checkpoint (``diverged_segment`` names the segment that failed; ``weights`` is
that last finite checkpoint), and :func:`recompute_segment` on that segment raises
:class:`NonFiniteWeights`, which lets any validator confirm the divergence by re-running
one segment. The chain rejects a diverged job; NaN bits are never hashed, so the
platform-specific NaN payloads of IEEE 754 never reach consensus.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import numpy as np

from ml_runtime import kernels
from ml_runtime.errors import (
    InvalidCheckpoint,
    InvalidJob,
    NonFiniteWeights,
    SegmentMismatch,
)
from ml_runtime.fpenv import require_default_environment
from ml_runtime.prf import batch_indices, sample_indices
from ml_runtime.spec import ModelSpec
from ml_runtime.transcript import Transcript, TranscriptEntry, float32_bytes, hash_weights

MAX_STEPS: Final = 1_000_000
MAX_BATCH: Final = 4096
# The most rows a job trains on, and so the most a data set may register (the chain's
# datasets pallet imports it): its one home.
MAX_ROWS: Final = 1 << 20
# Threads :func:`recompute_segments` may start: more than the machine's cores only adds
# switching, and the bound keeps a caller's typo from starting thousands.
MAX_THREADS: Final = 256


def _is_immutable(a: np.ndarray) -> bool:
    """True if nobody can ever write ``a``'s values: it is read-only, and the chain of its bases
    ends in a ``bytes`` object (numpy refuses to make such an array writeable again, where the
    owner of an array's memory may flip a plain read-only flag back)."""
    if a.flags.writeable:
        return False
    base: object = a
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, bytes)


# Immutable arrays (_is_immutable) whose values passed a job's checks, by (id, check): their
# values never change, so a data set's rows are checked once, not once per job (the digits:
# 115,008 floats). An entry is dropped when its array is freed (weakref callback), before the
# id can be reused, and the weakref is compared on every hit besides.
_CHECKED: dict[tuple[int, str], weakref.ref[np.ndarray]] = {}


def _checked_once(a: np.ndarray, check: str, run: Callable[[], None]) -> None:
    """``run()`` (which raises InvalidJob) unless ``a`` is immutable and passed ``check`` before."""
    if not _is_immutable(a):
        run()
        return
    key = (id(a), check)
    ref = _CHECKED.get(key)
    if ref is not None and ref() is a:
        return
    run()

    def forget(_ref: weakref.ref[np.ndarray]) -> None:
        _CHECKED.pop(key, None)

    _CHECKED[key] = weakref.ref(a, forget)


def _frozen_copy(a: np.ndarray, dtype: str) -> np.ndarray:
    """A read-only C-contiguous array of ``a``'s values as ``dtype``: ``a`` itself if it is that
    already and immutable (a data set's cached rows, chain.pallets.datasets: shared by every
    job, not copied per job), else a copy."""
    if a.dtype == np.dtype(dtype) and a.flags.c_contiguous and _is_immutable(a):
        return a
    out = np.array(a, dtype=dtype, order="C", copy=True)
    out.flags.writeable = False
    return out


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise InvalidJob(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if not lo <= v <= hi:
        raise InvalidJob(f"{name}={v} is outside {lo}..{hi}")
    return v


def _check_rate(name: str, value: object, *, positive: bool) -> np.float32:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise InvalidJob(f"{name} must be a real number, got {type(value).__name__}")
    with np.errstate(all="ignore"):
        v = np.float32(value)
    if not math.isfinite(float(v)):
        raise InvalidJob(f"{name}={value!r} is not finite as a float32")
    if positive and not v > 0:
        raise InvalidJob(f"{name}={value!r} must be > 0 as a float32")
    if not positive and v < 0:
        raise InvalidJob(f"{name}={value!r} must be >= 0")
    return v


def _check_finite(name: str, a: np.ndarray) -> None:
    if not np.isfinite(a).all():
        raise InvalidJob(f"{name} contains NaN or infinity")


def _check_labels(y: np.ndarray, k: int) -> None:
    if y.min() < 0 or y.max() >= k:
        bad = int(y[(y < 0) | (y >= k)][0])
        raise InvalidJob(f"label {bad} is outside 0..{k - 1}")


def _check_array(name: str, a: object, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise InvalidJob(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.dtype(dtype):
        raise InvalidJob(f"{name} has dtype {a.dtype}; expected {np.dtype(dtype)}")
    if a.shape != shape:
        raise InvalidJob(f"{name} has shape {a.shape}; expected {shape}")
    return a


@dataclass(frozen=True, slots=True, eq=False)
class TrainingJob:
    """Everything a training opcode needs; validated (and copied read-only) on construction.

    Arrays that are already immutable (read-only over a ``bytes`` buffer) are kept, not copied.

    ``x`` is float32 (n, d); ``y`` is int32 (n,) class labels for softmax/mlp and float32
    (n, k) targets for linear. ``lr`` and ``l2`` are stored as float32. Steps are split
    into ``num_segments`` segments of ``segment_len`` steps (the last may be shorter).
    """

    spec: ModelSpec
    weights: np.ndarray
    x: np.ndarray
    y: np.ndarray
    steps: int
    batch_size: int
    lr: float  # stored as np.float32
    l2: float  # stored as np.float32
    seed: bytes
    segment_len: int

    def __post_init__(self) -> None:
        spec = self.spec
        if not isinstance(spec, ModelSpec):
            raise InvalidJob(f"spec must be a ModelSpec, got {type(spec).__name__}")
        w = _check_array("weights", self.weights, "float32", (spec.param_count,))
        if not np.isfinite(w).all():
            raise InvalidJob("weights contain NaN or infinity")
        if not isinstance(self.x, np.ndarray) or self.x.ndim != 2:
            raise InvalidJob("x must be a 2-D numpy array (n rows, d features)")
        n = self.x.shape[0]
        if n < 1:
            raise InvalidJob("dataset is empty (x has 0 rows)")
        if n > MAX_ROWS:
            raise InvalidJob(f"dataset has {n} rows; at most {MAX_ROWS}")
        x = _check_array("x", self.x, "float32", (n, spec.d))
        _checked_once(x, "finite", lambda: _check_finite("x", x))
        if spec.family == "linear":
            y = _check_array("y", self.y, "float32", (n, spec.k))
            _checked_once(y, "finite", lambda: _check_finite("y", y))
        else:
            y = _check_array("y", self.y, "int32", (n,))
            _checked_once(y, f"labels<{spec.k}", lambda: _check_labels(y, spec.k))
        steps = _check_int("steps", self.steps, 1, MAX_STEPS)
        batch = _check_int("batch_size", self.batch_size, 1, min(n, MAX_BATCH))
        seg = _check_int("segment_len", self.segment_len, 1, steps)
        lr = _check_rate("lr", self.lr, positive=True)
        l2 = _check_rate("l2", self.l2, positive=False)
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise InvalidJob("job seed must be exactly 32 bytes")
        set_ = object.__setattr__
        set_(self, "weights", _frozen_copy(w, "float32"))
        set_(self, "x", _frozen_copy(x, "float32"))
        set_(self, "y", _frozen_copy(y, str(y.dtype)))
        set_(self, "steps", steps)
        set_(self, "batch_size", batch)
        set_(self, "segment_len", seg)
        set_(self, "lr", lr)
        set_(self, "l2", l2)

    @property
    def num_segments(self) -> int:
        """ceil(steps / segment_len)."""
        return -(-self.steps // self.segment_len)

    def segment_steps(self, j: int) -> range:
        """Global step indices of segment j."""
        start = j * self.segment_len
        return range(start, min(start + self.segment_len, self.steps))


@dataclass(frozen=True, slots=True, eq=False)
class JobResult:
    """Outcome of :func:`run_job`.

    ``checkpoints[j]`` are the weights after j segments (``checkpoints[0]`` the initial
    weights); ``transcript.entries[j]`` commits to them. When ``finite`` is False the
    job diverged in segment ``diverged_segment`` (at global step ``diverged_step``) and
    everything stops at the last finite checkpoint, which is also ``weights``.
    """

    weights: np.ndarray
    checkpoints: tuple[np.ndarray, ...]
    transcript: Transcript
    finite: bool
    diverged_segment: int | None = None
    diverged_step: int | None = None


def _run_segment(job: TrainingJob, j: int, w: np.ndarray) -> tuple[np.float32, int]:
    """Run segment j in place on w; returns (mean loss, status) as the kernels define."""
    steps = job.segment_steps(j)
    idx = batch_indices(job.seed, steps.start, len(steps), job.x.shape[0], job.batch_size)
    return run_kernel(job.spec, w, job.x, job.y, idx, len(steps), job.batch_size, job.lr, job.l2)


def run_kernel(
    spec: ModelSpec, w: np.ndarray, x: np.ndarray, y: np.ndarray, idx: np.ndarray, nsteps: int, batch: int,
    lr: np.float32 | float, l2: np.float32 | float,
) -> tuple[np.float32, int]:
    """The family's segment kernel: ``nsteps`` SGD steps of ``batch`` rows (``idx``) in place
    on ``w``; (mean loss, status) as the kernels define. The one place a family picks its
    kernel, for training and for ml_runtime.compute_loss alike. ``lr`` and ``l2`` are float32
    values (np.float32, as a TrainingJob stores them). Raises SubnormalsFlushed or
    RoundingChanged, before any step, on a thread that flushes subnormals or rounds otherwise
    than to nearest (ml_runtime.fpenv: checked on every call, about a microsecond, so every
    thread that trains, re-runs or computes a loss is checked)."""
    require_default_environment(spec.family)
    args = (w, x, y, idx, nsteps, batch, lr, l2, spec.d, spec.k)
    # errstate only matters when the kernels run as Python (NUMBA_DISABLE_JIT=1): overflow
    # to inf is an expected, handled outcome, not something to warn about.
    with np.errstate(all="ignore"):
        if spec.family == "linear":
            loss, status = kernels.linear_segment(*args)
        elif spec.family == "softmax":
            loss, status = kernels.softmax_segment(*args)
        else:
            loss, status = kernels.mlp_segment(*args, spec.h)
    return np.float32(loss), int(status)


def _entry(index: int, w: np.ndarray, loss: np.float32) -> TranscriptEntry:
    return TranscriptEntry(index, hash_weights(w), float(loss))


def run_job(job: TrainingJob) -> JobResult:
    """Run every step of ``job``; checkpoint and commit every ``segment_len`` steps.

    Entry 0 commits to the initial weights with loss +0.0 (no step has run yet).
    """
    if not isinstance(job, TrainingJob):
        raise InvalidJob(f"run_job needs a TrainingJob, got {type(job).__name__}")
    w = np.array(job.weights, dtype=np.float32, copy=True)
    checkpoints = [w.copy()]
    entries = [_entry(0, w, np.float32(0.0))]
    for j in range(job.num_segments):
        loss, status = _run_segment(job, j, w)
        if status >= 0:
            return JobResult(
                weights=checkpoints[-1],
                checkpoints=tuple(checkpoints),
                transcript=Transcript.build(entries),
                finite=False,
                diverged_segment=j,
                diverged_step=job.segment_steps(j).start + status,
            )
        checkpoints.append(w.copy())
        entries.append(_entry(j + 1, w, loss))
    return JobResult(w, tuple(checkpoints), Transcript.build(entries), True)


def recompute_segment(
    job: TrainingJob, j: int, checkpoint_j: np.ndarray
) -> tuple[TranscriptEntry, np.ndarray]:
    """Re-run segment j (steps [jL, min((j+1)L, steps))) from ``checkpoint_j``.

    Returns the transcript entry j+1 and the weights after the segment. Raises
    :class:`InvalidCheckpoint` for a checkpoint of the wrong type/dtype/length or with
    non-finite values, :class:`InvalidJob` for j out of range, and
    :class:`NonFiniteWeights` if the segment diverges.
    """
    if not isinstance(job, TrainingJob):
        raise InvalidJob(f"recompute_segment needs a TrainingJob, got {type(job).__name__}")
    if not isinstance(j, numbers.Integral) or isinstance(j, bool) or not 0 <= j < job.num_segments:
        raise InvalidJob(f"segment index {j!r} is outside 0..{job.num_segments - 1}")
    if not isinstance(checkpoint_j, np.ndarray):
        raise InvalidCheckpoint(f"checkpoint must be a numpy array, got {type(checkpoint_j).__name__}")
    if checkpoint_j.dtype != np.float32:
        raise InvalidCheckpoint(f"checkpoint has dtype {checkpoint_j.dtype}; expected float32")
    if checkpoint_j.shape != (job.spec.param_count,):
        raise InvalidCheckpoint(
            f"checkpoint has shape {checkpoint_j.shape}; expected ({job.spec.param_count},)"
        )
    if not np.isfinite(checkpoint_j).all():
        raise InvalidCheckpoint("checkpoint contains NaN or infinity")
    j = int(j)
    w = np.array(checkpoint_j, dtype=np.float32, copy=True)
    loss, status = _run_segment(job, j, w)
    if status >= 0:
        step = job.segment_steps(j).start + status
        raise NonFiniteWeights(
            f"segment {j} diverged at step {step}: the loss or a weight became non-finite",
            segment=j,
            step=step,
        )
    return _entry(j + 1, w, loss), w


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _forget_pools() -> None:
    """In a forked child: the pools' threads stayed in the parent, so a task submitted to
    an inherited pool would never run (mutmut forks a child per mutant); make new ones."""
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools)


def get_rerun_pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` threads for re-running segments, made on first use and
    kept (one per thread count asked for: in practice one, a thread a core).

    A pool made per call pays its threads' start on every block, and each new thread must
    get the GIL once to begin: on this project's 2-vCPU machine, re-running 8 sampled
    segments of 200 steps on 2 threads gave a median 1.75x over one thread with a pool a
    call against 1.86x with a kept one (12 interleaved rounds; /work bench notes in the
    README, Performance). Callers may share it: each waits for its own futures only, and no
    task submitted to it submits to it again (a re-run calls the kernels, never a pool). Each of
    its threads inherits MXCSR from the thread whose submit started it; every kernel call checks
    its own thread for FTZ/DAZ (run_kernel), so a pool thread started on a flushing thread
    refuses its segments with SubnormalsFlushed."""
    n = _check_int("threads", threads, 1, MAX_THREADS)
    with _POOLS_LOCK:
        pool = _POOLS.get(n)
        if pool is None:
            pool = _POOLS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"rerun{n}")
        return pool


def recompute_segments(
    job: TrainingJob,
    indices: Sequence[int],
    checkpoints: Sequence[np.ndarray],
    threads: int | None = None,
) -> list[tuple[TranscriptEntry, np.ndarray]]:
    """:func:`recompute_segment` for each ``(indices[n], checkpoints[n])``, on a thread pool.

    Segments are independent given their starting checkpoints, and the kernels release
    the GIL (``nogil=True``), so a validator re-running its m sampled segments uses every
    core. Each segment runs on its own copy of its checkpoint with the same kernel, so
    the results are those of the serial calls, bit for bit, in the order of ``indices``.
    ``threads`` defaults to min(len(indices), os.cpu_count()) and must be 1..MAX_THREADS.
    If segments fail, the error raised is the one the serial loop would raise first (that
    of the earliest failing position in ``indices``); every segment still runs to its end.
    """
    if not isinstance(job, TrainingJob):
        raise InvalidJob(f"recompute_segments needs a TrainingJob, got {type(job).__name__}")
    idx = list(indices)
    cps = list(checkpoints)
    if len(idx) != len(cps):
        raise InvalidJob(f"{len(idx)} segment indices but {len(cps)} checkpoints")
    if threads is None:
        threads = min(len(idx), os.cpu_count() or 1)
    n_threads = _check_int("threads", threads, 1, MAX_THREADS) if idx else 1
    if n_threads == 1 or len(idx) <= 1:
        return [recompute_segment(job, j, cp) for j, cp in zip(idx, cps, strict=True)]
    pool = get_rerun_pool(n_threads)
    futures = [pool.submit(recompute_segment, job, j, cp) for j, cp in zip(idx, cps, strict=True)]
    return [f.result() for f in futures]


def verify_segment(
    job: TrainingJob,
    j: int,
    checkpoint_j: np.ndarray,
    claimed_entry: TranscriptEntry,
    previous_entry: TranscriptEntry | None = None,
) -> None:
    """Raise :class:`SegmentMismatch` unless re-running segment j yields ``claimed_entry``.

    ``claimed_entry`` is the transcript's entry j+1. Pass ``previous_entry`` (entry j)
    to also check that ``checkpoint_j`` is the committed one: a validator must, because
    a tiny forgery of the *input* weights (a low mantissa bit of a weight that the next
    update dwarfs) can be rounded away by the segment. A forgery of the *output* — the
    claimed entry j+1 — always changes its hash and is always caught. A diverging segment
    is a mismatch too (a committed entry claims finite weights).
    """
    if not isinstance(claimed_entry, TranscriptEntry):
        raise SegmentMismatch(
            f"claimed entry must be a TranscriptEntry, got {type(claimed_entry).__name__}"
        )
    if previous_entry is not None:
        if previous_entry.index != j:
            raise SegmentMismatch(f"previous entry has index {previous_entry.index}, not {j}")
        if not isinstance(checkpoint_j, np.ndarray) or checkpoint_j.dtype != np.float32:
            raise InvalidCheckpoint("checkpoint must be a float32 numpy array")
        if hash_weights(checkpoint_j) != previous_entry.weights_hash:
            raise SegmentMismatch(f"checkpoint {j} does not match the hash committed in entry {j}")
    try:
        entry, _ = recompute_segment(job, j, checkpoint_j)
    except NonFiniteWeights as exc:
        raise SegmentMismatch(f"claimed entry {claimed_entry.index} but {exc}") from exc
    if entry.index != claimed_entry.index:
        raise SegmentMismatch(f"segment {j} produces entry {entry.index}, not {claimed_entry.index}")
    if entry.weights_hash != claimed_entry.weights_hash:
        raise SegmentMismatch(
            f"segment {j}: weights hash {entry.weights_hash.hex()} != claimed "
            f"{claimed_entry.weights_hash.hex()}"
        )
    if float32_bytes(entry.loss) != float32_bytes(claimed_entry.loss):
        raise SegmentMismatch(f"segment {j}: loss {entry.loss!r} != claimed {claimed_entry.loss!r}")


def sample_segments(secret: bytes, block_hash: bytes, S: int, m: int) -> tuple[int, ...]:
    """m distinct segment indices in [0, S), sorted, from a PRF keyed by ``secret``.

    ``secret`` (16..64 bytes) is the validator's own, so the author cannot predict the
    sample; ``block_hash`` (32 bytes) binds it to one block. ``m`` larger than ``S`` is
    clipped to ``S`` (every segment is re-run); ``m == 0`` returns ``()``; negative ``m``
    or ``S < 1`` raise :class:`InvalidJob`.
    """
    if not isinstance(secret, bytes) or not 16 <= len(secret) <= 64:
        raise InvalidJob("validator secret must be 16..64 bytes (a blake2b key)")
    if not isinstance(block_hash, bytes) or len(block_hash) != 32:
        raise InvalidJob("block hash must be exactly 32 bytes")
    S = _check_int("S (segment count)", S, 1, MAX_STEPS)
    m = _check_int("m (sample size)", m, 0, 2**31)
    return tuple(sorted(sample_indices(secret, block_hash, S, min(m, S))))

