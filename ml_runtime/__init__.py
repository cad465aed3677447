"""polchain ml_runtime: bit-exact SGD training, transcripts and proof-of-learning checks.

A leaf package (numpy + numba only). Every computation on the consensus path follows the
determinism profile of docs/architecture.md §3: float32 in a fixed order, + - * / only (exp/log
are built from them), blake2b PRFs instead of numpy random generators, and a plain
NumPy scalar twin for every numba kernel.
"""

from ml_runtime.cost import (
    DRAW_UNITS,
    NS_PER_UNIT,
    SEGMENT_PARAM_UNITS,
    SEGMENT_UNITS,
    STEP_PARAM_UNITS,
    STEP_UNITS,
    segment_cost,
    step_cost,
    train_cost,
    train_step_cost,
)
from ml_runtime.data import load_digits
from ml_runtime.errors import (
    BuildMismatch,
    FloatEnvironmentChanged,
    InvalidCheckpoint,
    InvalidJob,
    InvalidSpec,
    MLRuntimeError,
    NonFiniteWeights,
    ProofError,
    RoundingChanged,
    SegmentMismatch,
    SubnormalsFlushed,
)
from ml_runtime.inference import compute_loss, predict
from ml_runtime.job import (
    MAX_BATCH,
    MAX_ROWS,
    JobResult,
    TrainingJob,
    get_rerun_pool,
    recompute_segment,
    recompute_segments,
    run_job,
    sample_segments,
    verify_segment,
)
from ml_runtime.prf import batch_indices, init_weights
from ml_runtime.selfcheck import verify_build, warm_up
from ml_runtime.spec import ModelSpec
from ml_runtime.transcript import (
    Transcript,
    TranscriptEntry,
    compute_frontier,
    compute_frontier_root,
    compute_leaf_path,
    compute_merkle_root,
    compute_path_root,
    hash_weights,
    merkle_proof,
    merkle_proofs,
    merkle_root,
    verify_leaf_path,
    verify_merkle_proof,
)

__all__ = [
    "DRAW_UNITS",
    "MAX_BATCH",
    "MAX_ROWS",
    "NS_PER_UNIT",
    "SEGMENT_PARAM_UNITS",
    "SEGMENT_UNITS",
    "STEP_PARAM_UNITS",
    "STEP_UNITS",
    "BuildMismatch",
    "FloatEnvironmentChanged",
    "InvalidCheckpoint",
    "InvalidJob",
    "InvalidSpec",
    "JobResult",
    "MLRuntimeError",
    "ModelSpec",
    "NonFiniteWeights",
    "ProofError",
    "RoundingChanged",
    "SegmentMismatch",
    "SubnormalsFlushed",
    "TrainingJob",
    "Transcript",
    "TranscriptEntry",
    "batch_indices",
    "compute_frontier",
    "compute_frontier_root",
    "compute_leaf_path",
    "compute_loss",
    "compute_merkle_root",
    "compute_path_root",
    "get_rerun_pool",
    "hash_weights",
    "init_weights",
    "load_digits",
    "merkle_proof",
    "merkle_proofs",
    "merkle_root",
    "predict",
    "recompute_segment",
    "recompute_segments",
    "run_job",
    "sample_segments",
    "segment_cost",
    "step_cost",
    "train_cost",
    "train_step_cost",
    "verify_build",
    "verify_leaf_path",
    "verify_merkle_proof",
    "verify_segment",
    "warm_up",
]
