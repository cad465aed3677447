"""Start-up checks of this build: compile every kernel, then prove it computes the pinned bits.

The node calls :func:`warm_up` (so the first block does not pay numba's compile time;
with ``cache=True`` a restarted node loads machine code from ``__pycache__``) and then
:func:`verify_build`, which runs the small golden job of every family (one kernel each:
linear's squared error, softmax's exp/log, the MLP's two layers and ReLU; all with the
update, L2 decay and a short last segment) and compares each transcript root and final
weights hash with the values pinned here. A build that computes other bits in any one
kernel would fork the chain on that family's calls, so every family is checked. The jobs
are the golden vectors ``tests/vectors/ml_runtime/{linear,softmax,mlp}.json``; a test keeps
the two in sync.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np

from ml_runtime import kernels
from ml_runtime.errors import BuildMismatch, NonFiniteWeights
from ml_runtime.job import TrainingJob, run_job
from ml_runtime.prf import batch_indices, init_weights
from ml_runtime.spec import ModelSpec

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
    batch_indices(bytes(32), 0, 1, 3, 1)  # the compiled batch PRF (and its keyed-state cache)


def verify_build() -> None:
    """Raise :class:`BuildMismatch` unless this build reproduces every family's pinned vector."""
    for family, (pinned_root, pinned_final) in PINNED.items():
        try:
            result = run_job(golden_job(family))
        except NonFiniteWeights as exc:  # cannot happen on a correct build
            raise BuildMismatch(f"the golden {family} job diverged on this build: {exc}") from exc
        root = result.transcript.root.hex()
        final = result.transcript.entries[-1].weights_hash.hex()
        if not result.finite or root != pinned_root or final != pinned_final:
            raise BuildMismatch(
                f"this build computes transcript root {root} (final weights {final}) for the "
                f"golden {family} vector, which pins {pinned_root} ({pinned_final}). Do not "
                f"validate with this build: its {family} kernel is not bit-exact with the "
                "network's."
            )
