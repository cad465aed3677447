"""Start-up checks of this build: compile every kernel, then prove it computes the pinned bits.

The node calls :func:`warm_up` (so the first block does not pay numba's compile time;
with ``cache=True`` a restarted node loads machine code from ``__pycache__``) and then
:func:`verify_build` on its main thread, before it opens anything. verify_build refuses
(BuildMismatch) unless, in order:

1. the thread keeps subnormals (no FTZ/DAZ) and rounds to nearest (:mod:`ml_runtime.fpenv`;
   the kernel entry points check every thread they run on too, so a rerun-pool or
   block-worker thread that flushes or rounds otherwise refuses with SubnormalsFlushed or
   RoundingChanged);
2. each family's small golden job (PINNED: one kernel each, linear's squared error,
   softmax's exp/log, the MLP's two layers and ReLU; all with the update, L2 decay and a
   short last segment) runs to its pinned transcript root and final weights hash; these are
   the golden vectors ``tests/vectors/ml_runtime/{linear,softmax,mlp}.json``;
3. each family's job at batch 64 (:func:`wide_job`, PINNED_WIDE): the batch-4 job stays
   below the trip counts at which LLVM vectorises the loops over the samples, so a build
   allowed to reassociate (fastmath ``reassoc``: linear's loss sum goes another way from
   about 16 samples) passed it;
4. each family's job on subnormal data that ends with subnormal weights
   (:func:`subnormal_job`, PINNED_SUBNORMAL): FTZ/DAZ or any mishandled subnormal changes it;
5. each family's diverging job (:func:`diverging_job`, PINNED_DIVERGING) diverges in the
   pinned segment at the pinned step, for its author (run_job) and for a verifier re-running
   the segment (NonFiniteWeights): a build without NaN/Inf semantics (``nnan``/``ninf``)
   folds the finiteness tests away, never diverges, and would commit non-finite weights and
   refuse honest diverged blocks;
6. each family's ``compute_loss`` over LOSS_ROWS = 256 rows in one batch, as a bounty
   claim evaluates a model (:func:`loss_case`, PINNED_LOSS);
7. the FedAvg kernel's aggregate of 7 updates, with subnormal averages
   (:func:`fedavg_case`, PINNED_FEDAVG): the aggregate becomes a model version in state, and
   an FMA-contracted FedAvg computes another.

An unexpected exception of any of them (the ``nnan`` build divided by a zero it had assumed
away) is a BuildMismatch too. The cases of 3-7 are the vectors
``tests/vectors/ml_runtime/selfcheck_*.json`` (tests/ml_runtime/make_vectors.py); tests keep
the pins and the vectors in sync and have the NumPy twins compute the same bits. All of it
takes about 3 ms once the kernels are loaded (0.4 ms for step 2 alone), at every start.

Why these: an outside tester's determinism round (6c) built scratch copies of the kernels
with fastmath flags and ran them on FTZ/DAZ threads; the small golden jobs alone accepted the
``reassoc``, ``nnan``/``ninf`` and FMA-contracted FedAvg builds and FTZ/DAZ threads, each of
which computes other consensus bits. The full ``fastmath=True`` and ``contract`` builds were
already refused. Not covered: the forward kernels (``predict``: INFER receipts and
``ml_predict``, not consensus; an ``arcp`` build changes only them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial
from typing import Final

import numpy as np

from ml_runtime import fedavg, kernels
from ml_runtime.errors import BuildMismatch, NonFiniteWeights
from ml_runtime.fedavg import federated_average
from ml_runtime.fpenv import flushes_subnormals, rounds_otherwise
from ml_runtime.inference import compute_loss
from ml_runtime.job import TrainingJob, recompute_segment, run_job
from ml_runtime.prf import batch_indices, init_weights
from ml_runtime.spec import ModelSpec
from ml_runtime.transcript import hash_weights

_PERSON_GOLDEN: Final = b"polchain/ml/gold"

# Pinned (transcript root, final weights hash) of golden_job(family), hex; the same values
# as tests/vectors/ml_runtime/<family>.json.
PINNED: Final = {
    "linear": (
        "bb2039148382b48a13c2617b0ec3e59d9698111bb59124e2981088601cb03cf9",
        "9045fcde85bc5d413587a9cd912bf81caa66a50a4f25bc86965829d5776a18eb",
    ),
    "softmax": (
        "6179d4208710df0626de80d6ab797c966abb2a8dbf42e3da09730c9e4e1f7c14",
        "f8c1c7268bcae9a8584cccd882b3d6b1f30940220d1bddb73dc6527c569e9547",
    ),
    "mlp": (
        "3ff1c67c851557a9b1b916f2bdddef7a583ae40aaf080e42d19f69aaf2e29a81",
        "827631b6f938730f58c7549582858c66c8f9af2f44f9505a751042866401ada3",
    ),
}


# Pinned results of the start-up checks beyond the small golden jobs, hex; the same values as
# tests/vectors/ml_runtime/selfcheck_*.json (made by tests/ml_runtime/make_vectors.py; a test
# keeps the two in sync, and another has the NumPy twins compute them too).
# wide_job(family) and subnormal_job(family): (transcript root, final weights hash).
PINNED_WIDE: Final = {
    "linear": (
        "b16f37a03223eaff9123d84b06ab7b869af48919da2730c656367cd6c0738fed",
        "8ea7ac0e122d3543ed02f561847948d16978acb8c54a1cb022a5bc370a9e6af2",
    ),
    "softmax": (
        "58f035f3c7105cf9112391e7bfc2d56a176c9b5b5135fa29d8b5b4dfffbaada1",
        "d354ed92b509c183869c2d6f871fabd49c19006b7241396cfb0f076277cd31e4",
    ),
    "mlp": (
        "cfceb8671a9413c1d1c1adb6c955530891dd58a43dc817cd1a1e55ad0edc7c1c",
        "9bd600d5b333de4eef4cd156f30eb33942126d96caa2ad94ec4d2a6b9c132356",
    ),
}
PINNED_SUBNORMAL: Final = {
    "linear": (
        "cf15c5fac62ddc00ec0ea6b8b83b02dc205c3eb3d1a235715a125bbe821078c4",
        "98f3ad0f0bafd531b1129a5478d03dcbb99a35f961fc3f2c05d55293943af5b1",
    ),
    "softmax": (
        "059229554dede7b28815d8229231ec9f3dea834921cff01642f416384c154727",
        "598add8805189c042ab91f6563bc4f9c271d38587bf2de46eb690e4728e1dc67",
    ),
    "mlp": (
        "33ddfbfb1bfdba3dfa8463629020fabf03b4432f5413d51ac1b8d1ce33f8ba2a",
        "f72754e1dbb11f8db8c1b3b22108ed97373c96b6bebf19ec5ed2ec083962d14a",
    ),
}
# diverging_job(family): (diverged segment, diverged global step, root of the transcript up to
# the last finite checkpoint).
PINNED_DIVERGING: Final = {
    "linear": (1, 5, "d5c0255469b8277e21e32512b3d73b4fb034d992d02bb7d2e80e278fb7dc8dfd"),
    "softmax": (2, 6, "865a1da9b6231980fe511bd89dbd473292261c315075a3b1ad94520e5e414de0"),
    "mlp": (1, 5, "211032c05b8d84eb5b269f7e1a4d06cb5b38b3e0f5e748c0a875a5658add937a"),
}
# compute_loss(*loss_case(family)): the float32 loss, little-endian.
PINNED_LOSS: Final = {"linear": "d9787b40", "softmax": "f7080940", "mlp": "46f5f63f"}
# federated_average(*fedavg_case()): hash_weights of the aggregate.
PINNED_FEDAVG: Final = "338d3e35e90764b7be50da0fb5deae7d9e33f21857f9d36f782b9eed32470225"


def _golden_floats(tag: bytes, count: int) -> np.ndarray:
    """``count`` float32 values uniform in [-1, 1) from a PRF, exact in float32."""
    out = bytearray()
    block = 0
    while len(out) < 4 * count:
        out += hashlib.blake2b(
            tag + block.to_bytes(8, "little"), digest_size=64, person=_PERSON_GOLDEN
        ).digest()
        block += 1
    words = np.frombuffer(bytes(out[: 4 * count]), dtype="<u4")
    u = (words >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)
    return np.float32(2.0) * u - np.float32(1.0)


GOLDEN_SPECS: Final = {
    "linear": ModelSpec("linear", 5, 3),
    "softmax": ModelSpec("softmax", 6, 4),
    "mlp": ModelSpec("mlp", 6, 3, 5),
}


def golden_job(family: str) -> TrainingJob:
    """The small fixed job of each family that the golden vectors pin.

    10 steps of batch 4 over 16 PRF-generated rows, segments of 3 steps (so the last
    segment has 1 step), lr 0.25, l2 0.001, inputs in [-2, 2).
    """
    spec = GOLDEN_SPECS[family]
    tag = family.encode()
    n = 16
    x = (np.float32(2.0) * _golden_floats(tag + b"/x", n * spec.d)).reshape(n, spec.d)
    if family == "linear":
        y = _golden_floats(tag + b"/y", n * spec.k).reshape(n, spec.k)
    else:
        u = _golden_floats(tag + b"/y", n)
        y = ((u + np.float32(1.0)) * np.float32(0.5 * spec.k)).astype(np.int32)
    seed = hashlib.blake2b(tag + b"/seed", digest_size=32, person=_PERSON_GOLDEN).digest()
    init_seed = hashlib.blake2b(tag + b"/init", digest_size=32, person=_PERSON_GOLDEN).digest()
    return TrainingJob(
        spec=spec,
        weights=init_weights(spec, init_seed),
        x=x,
        y=y,
        steps=10,
        batch_size=4,
        lr=0.25,
        l2=0.001,
        seed=seed,
        segment_len=3,
    )


def _golden_subnormals(tag: bytes, count: int) -> np.ndarray:
    """``count`` subnormal float32 values of either sign from a PRF, built from their bits (an
    exponent field of 0 and 23 PRF mantissa bits, the low one set so none is 0): no float
    operation makes them, so no MXCSR mode of the thread that builds them changes them."""
    words = _golden_floats(tag, count).view("<u4")  # the PRF's float bits, reused as raw bits
    bits = (words & np.uint32(0x807FFFFF)) | np.uint32(1)
    return bits.view(np.float32).astype(np.float32)


def _golden_rows(spec: ModelSpec, tag: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n rows for ``spec``: features in [-2, 2), targets in [-1, 1) or labels 0..k-1."""
    x = (np.float32(2.0) * _golden_floats(tag + b"/x", n * spec.d)).reshape(n, spec.d)
    if spec.family == "linear":
        return x, _golden_floats(tag + b"/y", n * spec.k).reshape(n, spec.k)
    u = _golden_floats(tag + b"/y", n)
    return x, ((u + np.float32(1.0)) * np.float32(0.5 * spec.k)).astype(np.int32)


def _golden_seed(tag: bytes) -> bytes:
    return hashlib.blake2b(tag, digest_size=32, person=_PERSON_GOLDEN).digest()


# The shapes of the batch-64 jobs: d = 12 takes one pass of eight inputs and one of four in
# the forward sums (kernels._affine_t), and h = 10, k = 5 leave remainders in every blocked loop.
WIDE_SPECS: Final = {
    "linear": ModelSpec("linear", 12, 3),
    "softmax": ModelSpec("softmax", 12, 5),
    "mlp": ModelSpec("mlp", 12, 5, 10),
}
WIDE_BATCH: Final = 64
LOSS_ROWS: Final = 256


def wide_job(family: str) -> TrainingJob:
    """The golden job at batch 64: 4 steps over 96 rows, segments of 3 steps.

    The small golden job's batch of 4 is below the trip count at which LLVM vectorises a
    loop over the samples; a build allowed to reassociate (fastmath ``reassoc``) turns the
    batch sums (linear's loss over the batch from about 16 samples: an outside tester's
    finding 1) into vector reductions in another order, which only a batch this wide shows.
    """
    spec = WIDE_SPECS[family]
    tag = b"wide/" + family.encode()
    x, y = _golden_rows(spec, tag, 96)
    return TrainingJob(
        spec=spec, weights=init_weights(spec, _golden_seed(tag + b"/init")), x=x, y=y, steps=4,
        batch_size=WIDE_BATCH, lr=0.05, l2=0.001, seed=_golden_seed(tag + b"/seed"), segment_len=3,
    )


def subnormal_job(family: str) -> TrainingJob:
    """A job on subnormal data that ends with subnormal weights: 4 steps of batch 8 over 16 rows.

    Every other feature is subnormal (the rest in [-2, 2)) and so is every initial weight.
    The gradient of a weight fed by a subnormal feature is subnormal, so those weights stay
    subnormal (a test checks the final weights hold some). A thread with FTZ or DAZ reads or
    writes them as 0 and gets another root (finding 4); so would a build whose
    arithmetic mishandles subnormals.
    """
    spec = GOLDEN_SPECS[family]
    tag = b"subnormal/" + family.encode()
    x, y = _golden_rows(spec, tag, 16)
    x[:, 1::2] = _golden_subnormals(tag + b"/xs", 16 * (spec.d // 2)).reshape(16, spec.d // 2)
    return TrainingJob(
        spec=spec, weights=_golden_subnormals(tag + b"/w", spec.param_count), x=x, y=y, steps=4,
        batch_size=8, lr=0.5, l2=0.01, seed=_golden_seed(tag + b"/seed"), segment_len=3,
    )


# The learning rates that make diverging_job(family) overflow after a few steps, not at once.
DIVERGING_LR: Final = {"linear": 1.0e4, "softmax": 5.0e37, "mlp": 1.0e6}


def diverging_job(family: str) -> TrainingJob:
    """A job that diverges: 12 steps of batch 4, segments of 3, at a learning rate so large
    (DIVERGING_LR) that a weight or the loss overflows after a few steps.

    Divergence is a consensus outcome (the job stops at the last finite checkpoint; a
    verifier re-runs the diverged segment and must see NonFiniteWeights at the same step). A
    build without NaN/Inf semantics (fastmath ``nnan``/``ninf``) folds the kernels'
    finiteness tests away and never diverges (finding 2); the golden jobs never diverge.
    """
    spec = GOLDEN_SPECS[family]
    tag = b"diverging/" + family.encode()
    x, y = _golden_rows(spec, tag, 16)
    return TrainingJob(
        spec=spec, weights=init_weights(spec, _golden_seed(tag + b"/init")), x=x, y=y, steps=12,
        batch_size=4, lr=DIVERGING_LR[family], l2=0.0, seed=_golden_seed(tag + b"/seed"), segment_len=3,
    )


def loss_case(family: str) -> tuple[ModelSpec, np.ndarray, np.ndarray, np.ndarray]:
    """(spec, weights, x, y) of the pinned ``compute_loss``: LOSS_ROWS rows in one batch, as
    a bounty claim evaluates a model (finding 1: a ``reassoc`` build computes other bits)."""
    spec = WIDE_SPECS[family]
    tag = b"loss/" + family.encode()
    x, y = _golden_rows(spec, tag, LOSS_ROWS)
    return spec, init_weights(spec, _golden_seed(tag + b"/init")), x, y


FEDAVG_SHAPE: Final = (7, 301)  # updates, parameters
FEDAVG_COUNTS: Final = (3, 1, 12, 7, 250, 33, 5)


def fedavg_case() -> tuple[list[np.ndarray], list[int]]:
    """(updates, counts) of the pinned FedAvg: 7 updates of 301 parameters in [-1, 1), of
    which the first 32 of every update are subnormal (so are their averages).

    FedAvg's aggregate becomes a model version in state (``chain.pallets.federated``); a
    build that contracts its multiply-add into an FMA computes other bits (finding 3).
    """
    u, n_params = FEDAVG_SHAPE
    updates = []
    for i in range(u):
        tag = b"fedavg/" + bytes([i])
        w = _golden_floats(tag, n_params)
        w[:32] = _golden_subnormals(tag + b"/s", 32)
        updates.append(w)
    return updates, list(FEDAVG_COUNTS)


def golden_init_seed(family: str) -> bytes:
    """The init seed :func:`golden_job` uses for ``family``."""
    return hashlib.blake2b(
        family.encode() + b"/init", digest_size=32, person=_PERSON_GOLDEN
    ).digest()


def warm_up() -> None:
    """Compile (or load from the numba cache) every kernel with the runtime's argument types."""
    ro_x = np.zeros((2, 2), dtype=np.float32)
    ro_x.flags.writeable = False
    ro_yf = np.zeros((2, 2), dtype=np.float32)
    ro_yf.flags.writeable = False
    ro_yi = np.zeros(2, dtype=np.int32)
    ro_yi.flags.writeable = False
    idx = np.zeros(1, dtype=np.int64)
    lr = np.float32(0.1)
    l2 = np.float32(0.0)
    w = np.zeros(6, dtype=np.float32)
    kernels.linear_segment(w, ro_x, ro_yf, idx, 1, 1, lr, l2, 2, 2)
    kernels.softmax_segment(w, ro_x, ro_yi, idx, 1, 1, lr, l2, 2, 2)
    kernels.mlp_segment(np.zeros(12, dtype=np.float32), ro_x, ro_yi, idx, 1, 1, lr, l2, 2, 2, 2)
    ro_w = np.zeros(6, dtype=np.float32)
    ro_w.flags.writeable = False
    ro_w12 = np.zeros(12, dtype=np.float32)
    ro_w12.flags.writeable = False
    kernels.linear_forward(ro_w, ro_x, 2, 2)
    kernels.softmax_forward(ro_w, ro_x, 2, 2)
    kernels.mlp_forward(ro_w12, ro_x, 2, 2, 2)
    fedavg.fedavg_kernel(np.zeros((1, 2), dtype=np.float32), np.ones(1, dtype=np.int64), np.int64(1),
                         np.empty(2, dtype=np.float32))
    flushes_subnormals()  # the thread checks of every kernel call (ml_runtime.fpenv)
    rounds_otherwise()
    batch_indices(bytes(32), 0, 1, 3, 1)  # the compiled batch PRF (and its keyed-state cache)


def _check_job(what: str, make: Callable[[], TrainingJob], pinned: tuple[str, str]) -> None:
    """BuildMismatch unless the job ``make()`` builds runs to its pinned (root, final weights hash)."""
    job = make()
    pinned_root, pinned_final = pinned
    try:
        result = run_job(job)
    except NonFiniteWeights as exc:  # cannot happen on a correct build
        raise BuildMismatch(f"the golden {what} job diverged on this build: {exc}") from exc
    root = result.transcript.root.hex()
    final = result.transcript.entries[-1].weights_hash.hex()
    if not result.finite or root != pinned_root or final != pinned_final:
        raise BuildMismatch(
            f"this build computes transcript root {root} (final weights {final}) for the "
            f"golden {what} vector, which pins {pinned_root} ({pinned_final}). Do not "
            f"validate with this build: its {job.spec.family} kernel is not bit-exact with the "
            "network's."
        )


def _check_divergence(family: str) -> None:
    """BuildMismatch unless diverging_job(family) diverges where pinned, as its author sees it
    (run_job: the step, and the root of the transcript up to the last finite checkpoint) and
    as a verifier re-running that segment does (NonFiniteWeights at the same step)."""
    segment, step, pinned_root = PINNED_DIVERGING[family]
    job = diverging_job(family)
    result = run_job(job)
    root = result.transcript.root.hex()
    if result.finite or (result.diverged_segment, result.diverged_step, root) != (segment, step, pinned_root):
        raise BuildMismatch(
            f"this build runs the golden diverging {family} job to finite={result.finite}, "
            f"divergence in segment {result.diverged_segment} at step {result.diverged_step}, "
            f"root {root}; the vector pins a divergence in segment {segment} at step {step}, "
            f"root {pinned_root}. "
            + ("This build cannot tell a diverged job (NaN/Inf) from a finite one." if result.finite
               else "Its divergence checks are not bit-exact with the network's.")
        )
    try:
        recompute_segment(job, segment, result.checkpoints[-1])
    except NonFiniteWeights as exc:
        if (exc.segment, exc.step) == (segment, step):
            return
        raise BuildMismatch(
            f"re-running segment {segment} of the golden diverging {family} job diverges at step "
            f"{exc.step}, not {step}"
        ) from exc
    raise BuildMismatch(f"re-running segment {segment} of the golden diverging {family} job does not diverge")


def _check_loss(family: str) -> None:
    loss = compute_loss(*loss_case(family))
    bits = None if loss is None else np.float32(loss).astype("<f4").tobytes().hex()
    if bits != PINNED_LOSS[family]:
        raise BuildMismatch(
            f"this build computes the golden {family} loss over {LOSS_ROWS} rows as {bits} "
            f"(float32, little-endian hex); the vector pins {PINNED_LOSS[family]}. Its "
            f"{family} kernel is not bit-exact with the network's (bounty claims would fork)."
        )


def _check_fedavg() -> None:
    aggregate = hash_weights(federated_average(*fedavg_case())).hex()
    if aggregate != PINNED_FEDAVG:
        raise BuildMismatch(
            f"this build computes the golden FedAvg aggregate with hash {aggregate}; the vector "
            f"pins {PINNED_FEDAVG}. Its FedAvg kernel is not bit-exact with the network's."
        )


def verify_build() -> None:
    """Raise :class:`BuildMismatch` unless this build, on this thread, computes every pinned bit.

    In order: the thread keeps subnormals and rounds to nearest (:mod:`ml_runtime.fpenv`); each family's small
    golden job (PINNED), its batch-64 job (PINNED_WIDE), its subnormal job
    (PINNED_SUBNORMAL), its diverging job (PINNED_DIVERGING) and its loss over LOSS_ROWS
    rows (PINNED_LOSS); the FedAvg aggregate (PINNED_FEDAVG). About 3 ms with the kernels
    loaded. An unexpected exception of a golden computation (a build without NaN semantics
    divided by a zero it assumed away) is a mismatch too.
    """
    if flushes_subnormals():
        raise BuildMismatch(
            "this thread flushes subnormal float32 values to zero (the CPU's FTZ or DAZ mode is "
            "on, e.g. set by a shared library built with -ffast-math, which sets it when loaded): "
            "the kernels would compute other bits than the network's on subnormal data and weights"
        )
    if rounds_otherwise():
        raise BuildMismatch(
            "this thread rounds float32 results otherwise than to nearest, ties to even (the CPU's "
            "rounding control was changed, e.g. by fesetround): the kernels would compute other bits "
            "than the network's"
        )
    checks: list[tuple[str, Callable[[], None]]] = [
        (family, partial(_check_job, family, partial(golden_job, family), pinned)) for family, pinned in PINNED.items()
    ]
    for family in PINNED:
        wide, subnormal = f"batch-{WIDE_BATCH} {family}", f"subnormal {family}"
        checks += [
            (wide, partial(_check_job, wide, partial(wide_job, family), PINNED_WIDE[family])),
            (subnormal, partial(_check_job, subnormal, partial(subnormal_job, family), PINNED_SUBNORMAL[family])),
            (f"diverging {family}", partial(_check_divergence, family)),
            (f"{family} loss", partial(_check_loss, family)),
        ]
    checks.append(("FedAvg", _check_fedavg))
    for what, check in checks:
        try:
            check()
        except BuildMismatch:
            raise
        except Exception as exc:
            raise BuildMismatch(f"the golden {what} check failed on this build: {exc!r}") from exc
