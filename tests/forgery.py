"""Forged training blocks for verifier tests: the strongest forgeries, not ones a header check catches.

Each forgery is made by the author's *trainer* (``Blockchain(trainer=...)``, the hook a
byzantine node uses): the job runs honestly, then its outcome is altered before the block is
built, so the result, the openings the author stores and serves, the transcript root, the
results root, the state root and the seal are all computed from the forged outcome. The
block is consistent in every commitment; only re-running training shows the lie.

Kinds (``FORGERIES``), for a job of n = S + 1 entries and a chosen ``segment`` k:

- ``start``: checkpoint 0 is not the on-chain weights (one weight nudged).
- ``segment``: checkpoint k (0 < k < n - 1) nudged: segment k - 1 no longer re-runs to it.
- ``end``: the result's weights (the new model version) are not checkpoint n - 1.
- ``divergence``: the transcript stops at entry k and claims segment k diverged (it did not).
- ``loss``: entry k's loss altered (its weights honest).

A withheld checkpoint needs no forgery: build honestly, then import through
:class:`WithholdingSource`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

import ml_runtime
from chain.errors import CheckpointsUnavailable
from chain.proofs import (
    Opening,
    TrainingClaim,
    TrainingResult,
    compute_openings,
    compute_result,
    verify_opening,
)
from chain.transcripts import LocalSource

FORGERIES = ("start", "segment", "end", "divergence", "loss")


def _nudged(w: np.ndarray) -> np.ndarray:
    out = np.array(w, dtype=np.float32, copy=True)
    out[len(out) // 2] += np.float32(0.25)
    return out


def forge_outcome(outcome: ml_runtime.JobResult, kind: str, segment: int) -> ml_runtime.JobResult:
    """``outcome`` altered as ``kind`` says, with its transcript rebuilt to match."""
    checkpoints = [np.array(c, dtype=np.float32, copy=True) for c in outcome.checkpoints]
    entries = list(outcome.transcript.entries)
    weights = outcome.weights
    if kind in ("start", "segment"):
        k = 0 if kind == "start" else segment
        if kind == "segment" and not 0 < k < len(checkpoints) - 1:
            raise ValueError(f"a forged middle checkpoint needs 0 < k < {len(checkpoints) - 1}, got {k}")
        checkpoints[k] = _nudged(checkpoints[k])
        entries[k] = ml_runtime.TranscriptEntry(k, ml_runtime.hash_weights(checkpoints[k]), entries[k].loss)
    elif kind == "end":
        weights = _nudged(weights)
    elif kind == "divergence":
        checkpoints, entries = checkpoints[: segment + 1], entries[: segment + 1]
        return ml_runtime.JobResult(
            checkpoints[-1], tuple(checkpoints), ml_runtime.Transcript.build(entries), False, segment, segment
        )
    elif kind == "loss":
        e = entries[segment]
        entries[segment] = ml_runtime.TranscriptEntry(segment, e.weights_hash, float(np.float32(e.loss) * np.float32(0.5)))
    else:
        raise ValueError(f"unknown forgery {kind!r}; one of {FORGERIES}")
    return replace(
        outcome, weights=weights, checkpoints=tuple(checkpoints), transcript=ml_runtime.Transcript.build(entries)
    )


def forging_trainer(kind: str, segment: int) -> Callable[[ml_runtime.TrainingJob], ml_runtime.JobResult]:
    """A trainer (``Blockchain(trainer=...)``) that runs each job honestly, then forges it."""

    def train(job: ml_runtime.TrainingJob) -> ml_runtime.JobResult:
        return forge_outcome(ml_runtime.run_job(job), kind, segment)

    return train


class WithholdingSource(LocalSource):
    """A LocalSource that never provides the entries in ``withheld`` (an author withholding them)."""

    def __init__(self, inner: LocalSource, withheld: Sequence[int]) -> None:
        super().__init__(inner.store)
        self.withheld = frozenset(withheld)

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted: Sequence[tuple[int, bool]]) -> dict[int, Opening]:
        refused = sorted(j for j, _ in wanted if j in self.withheld)
        if refused:
            raise CheckpointsUnavailable(f"training result #{result.extrinsic_index}: entries {refused} withheld")
        return super().fetch(block_hash, result, wanted)


class MemorySource:
    """A CheckpointSource over one job's openings held in memory (any block hash), verified as
    a network source verifies them; a test's stand-in for the author's store."""

    def __init__(self, openings: Sequence[Opening]) -> None:
        self.openings = {o.index: o for o in openings}

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted: Sequence[tuple[int, bool]]) -> dict[int, Opening]:
        missing = sorted(j for j, _ in wanted if j not in self.openings)
        if missing:
            raise CheckpointsUnavailable(f"training result #{result.extrinsic_index}: entries {missing} not held")
        for j, need_weights in wanted:
            verify_opening(result, self.openings[j], need_weights=need_weights)
        return {j: self.openings[j] for j, _ in wanted}


def forged_claim(
    job: ml_runtime.TrainingJob, kind: str, segment: int, *, index: int = 0, model: int = 0, parent: int = 0
) -> tuple[TrainingClaim, MemorySource]:
    """The claim a forging author's block makes for ``job`` and a source serving its openings
    (``kind`` ``honest``: no forgery), for calling a verifier's verify_block directly."""
    outcome = ml_runtime.run_job(job)
    if kind != "honest":
        outcome = forge_outcome(outcome, kind, segment)
    return TrainingClaim(index, job, compute_result(index, outcome), model, parent), MemorySource(compute_openings(outcome))
