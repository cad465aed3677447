"""The sampled verifier on forged blocks, and the fraud proofs it builds.

Every forged block here is built by an author chain whose trainer forges the job's outcome
(tests/forgery.py): results root, state root and seal are computed from the forgery, so the
header check passes and only the verifier can refuse the block. A validator imports it with
a SampledVerifier whose secret makes its sample cover the forged segment (the secret is
found by trying secrets, as an author cannot), and with FullReexecution; each refusal is
asserted by its message, the state root and best block are unchanged, and the FraudFound's
proof is checked by a third node (verify_fraud_proof) on its own state.
"""

from __future__ import annotations

import os
import sys
from math import comb
from pathlib import Path

import msgspec
import numpy as np
import pytest
from consensuskit import ALICE, BOB

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chain"))

from chainkit import open_chain, sign, train_call

import ml_runtime
from chain import proofs
from chain.blockchain import Blockchain
from chain.crypto import blake2_256
from chain.errors import BlockError, CheckpointsUnavailable, FraudFound, InvalidFraudProof
from chain.fraud import (
    FAULT_DIVERGENCE,
    FAULT_END,
    FAULT_SEGMENT,
    FAULT_START,
    compute_fraud_proof,
    decode_fraud_proof,
    verify_fraud_proof,
)
from chain.pallets import training
from chain.pallets.training import compute_job_at
from chain.proofs import FullReexecution, Opening, TrainingClaim, TrainingResult
from chain.transcripts import LocalSource
from consensus import pol
from consensus.pol import SampledVerifier, compute_sample, compute_sample_binding
from tests.forgery import WithholdingSource, forging_trainer

STEPS, SEGMENT = 60, 10  # S = 6 segments, n = 7 entries
S = STEPS // SEGMENT


def _author(path: Path, trainer=None, steps: int = STEPS, segment: int = SEGMENT):
    """An author chain (trainer forging or honest) and the block it built with one TRAIN call."""
    author = open_chain(path)
    if trainer is not None:
        author.trainer = trainer
    xt = sign(author, BOB, train_call(steps=steps, segment=segment), 0)
    built = author.build_block([xt], ALICE, slot=1)
    return author, built.block


def _covering_secret(block_hash: bytes, finished: int, samples: int, segments: set[int]) -> bytes:
    """The first secret whose sample of extrinsic #0 contains one of ``segments``."""
    for i in range(10_000):
        secret = i.to_bytes(4, "little") * 8
        if segments & set(compute_sample(secret, block_hash, 0, finished, samples)):
            return secret
    raise AssertionError("no secret covers the segments")


def _refuse(validator: Blockchain, block, source, error: type[BlockError], match: str) -> BlockError:
    root, best, number = validator.state.root(), validator.best_hash, validator.best_number
    with pytest.raises(error, match=match) as caught:
        validator.import_block(block, source)
    assert (validator.state.root(), validator.best_hash, validator.best_number) == (root, best, number)
    assert not validator.has_block(block.hash())
    return caught.value


def _check_proof_elsewhere(tmp: Path, fraud: FraudFound, kind: int, segment: int, block) -> None:
    """The proof names the block, the fault and the segment, survives its encoding, and a node
    that never saw the block accepts it on its own state."""
    proof = fraud.proof
    assert (proof.kind, proof.segment, proof.block_hash()) == (kind, segment, block.hash())
    assert decode_fraud_proof(proof.encode()) == proof
    other = open_chain(tmp / "other")
    verify_fraud_proof(other.genesis_hash, other.state_at(other.best_hash), other.config, proof)
    other.db.close()


FORGERY_CASES = [
    # (forgery kind, its parameter, the faulty segments, proof kind, proof segment, sampled message, full message)
    ("start", 0, set(), FAULT_START, 0, r"checkpoint 0 is not the model's on-chain weights",
     r"checkpoint 0 is not the model's on-chain weights"),
    ("segment", 3, {2, 3}, FAULT_SEGMENT, None, r"segment [23] re-runs to weights [0-9a-f]{64}, entry [34] claims",
     r"segment 2 re-runs to other weights than entry 3's"),
    ("end", 0, set(), FAULT_END, S, rf"entry {S} is not the committed new weights",
     r"the result's weights are not checkpoint 6 of its transcript"),
    ("divergence", 4, set(), FAULT_DIVERGENCE, 4, r"segment 4 re-runs without diverging; the transcript claims it diverged",
     r"segment 4 does not diverge as claimed"),
    ("loss", 2, {1}, FAULT_SEGMENT, 1, r"segment 1 re-runs to loss bits 0x[0-9a-f]{8}, entry 2 claims 0x[0-9a-f]{8}",
     r"segment 1 re-runs to loss bits"),
]


@pytest.mark.parametrize(("forgery", "param", "faulty", "kind", "segment", "sampled", "full"), FORGERY_CASES)
def test_a_forged_block_is_refused_with_a_fraud_proof(tmp_path, forgery, param, faulty, kind, segment, sampled, full) -> None:
    author, block = _author(tmp_path / "author", forging_trainer(forgery, param))
    source = LocalSource(author.transcripts)
    result = block.body.results[0]
    finished = len(result.losses) - 1
    secret = _covering_secret(block.hash(), finished, 2, faulty) if faulty else b"s" * 32
    validator = open_chain(tmp_path / "validator")
    validator.verifier = SampledVerifier(secret, 2)
    where = rf"^block {block.hash().hex()} extrinsic #0: "
    fraud = _refuse(validator, block, source, FraudFound, where + sampled)
    assert isinstance(fraud, FraudFound)
    expected = segment if segment is not None else fraud.proof.segment
    assert expected in (faulty or {expected})
    _check_proof_elsewhere(tmp_path, fraud, kind, expected, block)
    auditor = open_chain(tmp_path / "auditor")
    for threads in (None, 2):  # the pool policy (this block is small: inline), and a pool forced on
        auditor.verifier = FullReexecution(threads)
        _refuse(auditor, block, source, BlockError, full)
    # The honest twin of the job imports on the same validator: nothing of the refusal stuck.
    honest_author, honest = _author(tmp_path / "honest")
    validator.import_block(honest, LocalSource(honest_author.transcripts))
    for chain in (author, validator, auditor, honest_author):
        chain.db.close()


def _every_entry(n: int = S) -> list[tuple[int, bool]]:
    """What a sampled verifier asks for a job of ``n`` segments that claims no divergence:
    every segment's input checkpoint with its weights, the last entry without (consensus.pol)."""
    return [(j, True) for j in range(n)] + [(n, False)]


def test_a_withheld_checkpoint_makes_the_block_unavailable_not_invalid(tmp_path) -> None:
    """Withholding any entry refuses every validator alike, whatever its sample, and proves
    nothing against the author. (When a validator asked for its sample's checkpoints only,
    withholding one left the validators whose sample did not need it importing the block.)"""
    author, block = _author(tmp_path / "author")
    covering = _covering_secret(block.hash(), S, 2, {3})
    missing = next(s for s in (i.to_bytes(4, "little") * 8 for i in range(10_000))
                   if not {2, 3} & set(compute_sample(s, block.hash(), 0, S, 2)))  # neither re-runs nor checks entry 3
    validator = open_chain(tmp_path / "validator")
    for secret in (covering, missing):
        for withheld in (3, S):  # an inner checkpoint, the last entry
            validator.verifier = SampledVerifier(secret, 2)
            source = WithholdingSource(LocalSource(author.transcripts), [withheld])
            error = _refuse(validator, block, source, CheckpointsUnavailable, rf"entries \[{withheld}\] withheld")
            assert not isinstance(error, FraudFound)
    validator.import_block(block, LocalSource(author.transcripts))  # served in full, it imports
    author.db.close()
    validator.db.close()


def test_every_validator_asks_for_every_checkpoint_whatever_its_sample(tmp_path) -> None:
    """One request per job, the same for every validator: every segment's input checkpoint with
    its weights. An author that saw each validator's sample in its request refused exactly
    those that would catch its forgery (an outside reviewer's finding); what it can refuse now
    does not depend on the sample. The fetched openings are stored and served from here on."""
    author, block = _author(tmp_path / "author")
    validator = open_chain(tmp_path / "validator")
    claim = _claim(validator, block, 0)
    samples = set()
    for secret in (b"s" * 32, b"t" * 32, b"u" * 32, b"v" * 32, b"w" * 32, b"x" * 32):
        samples.add(compute_sample(secret, block.hash(), 0, S, 2))
        source = _Recording(LocalSource(author.transcripts))
        fetched = SampledVerifier(secret, 2).verify_block(block, block.hash(), [claim], source)
        assert source.asked == [(block.hash(), 0, _every_entry())]
        assert [(i, o.index) for i, o in fetched] == [(0, j) for j in range(S + 1)]
    assert len(samples) > 1  # different samples, one request
    validator.verifier = SampledVerifier(b"v" * 32, 2)
    validator.import_block(block, LocalSource(author.transcripts))
    assert validator.best_hash == block.hash()
    for j in range(S + 1):  # stored, and served from here on, with weights where they were fetched
        stored = validator.transcripts.get(block.hash(), 0, j)
        assert stored is not None and (stored.weights is not None) == (j < S)
    author.db.close()
    validator.db.close()


def test_an_author_refusing_whoever_asks_for_the_forged_checkpoint_gets_no_block_in(tmp_path) -> None:
    """The reviewer's attack: segment 3 forged, and the author serves every request but those
    that ask for checkpoint 3's weights, the one a re-run of segment 3 needs. Every validator
    asks for it, so none imports the block, whatever its sample (before, every validator whose
    sample missed segment 3 imported it and voted it final)."""
    author, block = _author(tmp_path / "author", forging_trainer("segment", 3))

    class Selective(LocalSource):
        def fetch(self, block_hash, result, wanted):  # type: ignore[no-untyped-def]
            if (3, True) in wanted:
                raise CheckpointsUnavailable("checkpoint 3 withheld from this validator")
            return super().fetch(block_hash, result, wanted)

    validator = open_chain(tmp_path / "validator")
    missed = 0
    for i in range(12):
        secret = i.to_bytes(4, "little") * 8
        missed += 3 not in compute_sample(secret, block.hash(), 0, S, 2)
        validator.verifier = SampledVerifier(secret, 2)
        _refuse(validator, block, Selective(author.transcripts), CheckpointsUnavailable, "checkpoint 3 withheld")
    assert missed > 0  # some of these samples miss segment 3: they imported the forgery before
    author.db.close()
    validator.db.close()


class _Recording:
    """A CheckpointSource that records what it is asked for."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.asked: list = []

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted) -> dict[int, Opening]:
        self.asked.append((block_hash, result.extrinsic_index, list(wanted)))
        return self.inner.fetch(block_hash, result, wanted)


def _claim(chain: Blockchain, block, index: int, result: TrainingResult | None = None) -> TrainingClaim:
    """The claim an import records for extrinsic ``index`` of ``block`` (a child of best)."""
    xt = block.body.extrinsics[index]
    job, parent_version, _ = compute_job_at(
        chain.state_at(block.header.parent_hash), chain.config, xt.call, block.header.parent_hash, xt.hash(), block.header.number
    )
    return TrainingClaim(index, job, result or block.body.results[0], xt.call.model, parent_version)


def test_the_sample_is_bound_to_the_secret_the_block_and_the_extrinsic() -> None:
    secret, block_hash = b"k" * 32, bytes(range(32))
    binding = compute_sample_binding(block_hash, 1)
    assert binding == blake2_256(b"polchain/pol/sample" + block_hash + b"\x01\x00\x00\x00")
    assert compute_sample(secret, block_hash, 1, 64, 4) == ml_runtime.sample_segments(secret, binding, 64, 4)
    samples = {compute_sample(secret, block_hash, i, 64, 4) for i in range(8)}
    assert len(samples) == 8  # each job of a block gets its own sample
    assert compute_sample(b"j" * 32, block_hash, 1, 64, 4) != compute_sample(secret, block_hash, 1, 64, 4)
    assert compute_sample(secret, bytes(32), 1, 64, 4) != compute_sample(secret, block_hash, 1, 64, 4)
    assert compute_sample(secret, block_hash, 0, 0, 4) == ()
    assert compute_sample(secret, block_hash, 0, 3, 9) == (0, 1, 2)


def test_sampled_verifier_parameters() -> None:
    assert SampledVerifier(b"k" * 32).samples == 4
    assert SampledVerifier(b"k" * 16, samples=1).samples == 1
    SampledVerifier(b"k" * 64, samples=1)
    for secret in (b"k" * 15, b"k" * 65, "k" * 32):
        with pytest.raises(ValueError, match=r"^a validator secret is 16\.\.64 bytes$"):
            SampledVerifier(secret, 2)  # type: ignore[arg-type]
    for samples in (0, -1, 1.0):
        with pytest.raises(ValueError, match=r"^a sampled verifier re-runs at least one segment per job$"):
            SampledVerifier(b"k" * 32, samples=samples)  # type: ignore[arg-type]


# --- detection rate --------------------------------------------------------------------------


class _Openings:
    """A CheckpointSource over one job's openings, whatever the block hash (the detection test
    re-verifies one forged job as if it were in many blocks), giving weights only where asked,
    as a peer would."""

    def __init__(self, openings: dict[int, Opening]) -> None:
        self.openings = openings

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted) -> dict[int, Opening]:
        return {
            j: self.openings[j] if with_weights else msgspec.structs.replace(self.openings[j], weights=None)
            for j, with_weights in wanted
            if j in self.openings
        }


def _all_openings(author: Blockchain, block, claim: TrainingClaim) -> dict[int, Opening]:
    count = len(claim.result.losses)
    return LocalSource(author.transcripts).fetch(block.hash(), claim.result, [(j, True) for j in range(count)])


def _forge_outputs(segments: set[int]):
    """A trainer that nudges the output of each segment in ``segments`` and trains on from it:
    exactly those segments re-run wrong."""

    def train(job: ml_runtime.TrainingJob) -> ml_runtime.JobResult:
        w = np.array(job.weights, dtype=np.float32, copy=True)
        checkpoints, entries = [w.copy()], [ml_runtime.TranscriptEntry(0, ml_runtime.hash_weights(w), 0.0)]
        for j in range(job.num_segments):
            entry, w = ml_runtime.recompute_segment(job, j, w)
            if j in segments:
                w[5] += np.float32(0.125)
            checkpoints.append(w.copy())
            entries.append(ml_runtime.TranscriptEntry(j + 1, ml_runtime.hash_weights(w), entry.loss))
        return ml_runtime.JobResult(w, tuple(checkpoints), ml_runtime.Transcript.build(entries), True)

    return train


def _binomial_bounds(n: int, p: float, alpha: float) -> tuple[int, int]:
    """The narrowest [lo, hi] with P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2, X ~ B(n, p)."""
    pmf = [comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    lo = next(j for j in range(n + 1) if sum(pmf[: j + 1]) > alpha / 2)
    hi = next(j for j in range(n, -1, -1) if sum(pmf[j:]) > alpha / 2)
    return lo, hi


@pytest.mark.parametrize(("segments", "samples", "faulty", "validators"), [(6, 2, 1, 1), (8, 2, 2, 2), (16, 4, 1, 3), (32, 3, 4, 2)])
def test_the_detection_rate_matches_the_formula(tmp_path, monkeypatch, segments, samples, faulty, validators) -> None:
    """Over B blocks (block hashes), each checked by V validators with their own secrets, a
    forgery of k of S segments is detected (some validator raises FraudFound) at the rate
    1 - (C(S-k, m) / C(S, m))^V. The count is Binomial(B, p); the bounds are its exact central
    interval with tails of 0.5e-9 each, so a correct sampler fails once in 10**9 runs (and the
    bits are fixed, so the run is deterministic anyway). Every detection's proof names a
    forged segment. The random sample alone: the largest update, which a validator re-runs
    too (and which these forgeries' jumps are), is pinned to segment 0, never forged here."""
    monkeypatch.setattr(pol, "compute_largest_update", lambda openings, result, n: 0)
    forged = set(range(1, segments, segments // faulty))
    assert len(forged) == faulty
    author, block = _author(tmp_path / "author", _forge_outputs(forged), steps=segments * 4, segment=4)
    validator = open_chain(tmp_path / "validator")
    claim = _claim(validator, block, 0)
    source = _Openings(_all_openings(author, block, claim))
    verifiers = [SampledVerifier(bytes([v + 1]) * 32, samples) for v in range(validators)]
    q = comb(segments - faulty, samples) / comb(segments, samples)
    p = 1 - q**validators
    blocks = 300
    lo, hi = _binomial_bounds(blocks, p, alpha=1e-9)
    detected = 0
    for b in range(blocks):
        block_hash = blake2_256(b.to_bytes(4, "little"))
        for verifier in verifiers:
            try:
                verifier.verify_block(block, block_hash, [claim], source)
            except FraudFound as fraud:
                assert (fraud.proof.kind, fraud.proof.segment in forged) == (FAULT_SEGMENT, True)
                detected += 1
                break
    assert lo <= detected <= hi, f"{detected} of {blocks} blocks detected; expected {blocks * p:.0f} in [{lo}, {hi}]"
    author.db.close()
    validator.db.close()


@pytest.mark.parametrize("pool_min_units", [0, proofs.POOL_MIN_UNITS])
def test_every_sampled_segment_is_rerun_in_parallel_and_the_earliest_fault_is_reported(
    tmp_path, monkeypatch, pool_min_units
) -> None:
    """All segments forged, m = S: the fault reported is segment 0's, as a serial run reports it,
    on a thread pool (a threshold of 0) and inline (this block's work is under the default)."""
    monkeypatch.setattr(proofs, "POOL_MIN_UNITS", pool_min_units)
    author, block = _author(tmp_path / "author", _forge_outputs(set(range(S))))
    validator = open_chain(tmp_path / "validator")
    claim = _claim(validator, block, 0)
    with pytest.raises(FraudFound, match=r"segment 0 re-runs to weights") as caught:
        SampledVerifier(b"a" * 32, S).verify_block(block, block.hash(), [claim], LocalSource(author.transcripts))
    assert (caught.value.proof.kind, caught.value.proof.segment) == (FAULT_SEGMENT, 0)
    author.db.close()
    validator.db.close()


def test_small_samples_rerun_inline_and_large_ones_on_a_pool_with_the_same_results(tmp_path) -> None:
    """Starting a pool costs about 0.6 ms of CPU: a block's re-runs under POOL_MIN_UNITS work units
    (a sample of 2 segments of a few jobs) run on the importing thread; above it, one thread a
    core. The results are the serial ones, bit for bit, in order."""
    author, block = _author(tmp_path / "author")
    claim = _claim(author, block, 0)
    openings = _all_openings(author, block, claim)
    one = [(claim.job, j, openings[j].get_weights()) for j in range(S)]
    per_task = ml_runtime.step_cost(claim.job.spec, claim.job.batch_size) * SEGMENT
    segments = [(job, j) for job, j, _ in one]
    assert proofs.compute_rerun_threads(segments[:1]) == 1 and proofs.compute_rerun_threads(segments) == 1
    many = one * (proofs.POOL_MIN_UNITS // (per_task * S) + 1)
    assert sum(per_task for _ in many) >= proofs.POOL_MIN_UNITS
    assert proofs.compute_rerun_threads([(job, j) for job, j, _ in many]) == (os.cpu_count() or 1)
    assert proofs.compute_rerun_threads([(job, j) for job, j, _ in many[:-S]]) == 1  # just under the threshold
    inline = pol._rerun_all(one)
    assert inline == [openings[j + 1].entry() for j in range(S)]
    assert pol._rerun_all(many) == inline * (len(many) // S)
    author.db.close()


def test_a_source_that_hands_over_a_wrong_opening_makes_the_block_unavailable(tmp_path) -> None:
    """Missing openings and ones without the weights the sample needs are refused at once; ones
    that do not verify are found when they would make a fault, and blamed on the source: the
    verifier never accuses an author with openings that are not the author's."""
    author, block = _author(tmp_path / "author")
    validator = open_chain(tmp_path / "validator")
    claim = _claim(validator, block, 0)
    everything = _all_openings(author, block, claim)
    verifier = SampledVerifier(b"v" * 32, 2)
    sample = compute_sample(b"v" * 32, block.hash(), 0, S, 2)
    j = sample[0]
    other_hash = msgspec.structs.replace(everything[0], weights_hash=everything[1].weights_hash)
    cases = {
        "missing": ({k: o for k, o in everything.items() if k != j}, j),
        "another entry": (everything | {j: everything[j + 1]}, j),
        "no weights": (everything | {j: msgspec.structs.replace(everything[j], weights=None)}, j),
        "other weights": (everything | {j: msgspec.structs.replace(everything[j], weights=everything[j + 1].weights)}, j),
        "short weights": (everything | {j: msgspec.structs.replace(everything[j], weights=everything[j].weights[:-4])}, j),
        "other output": (everything | {j + 1: msgspec.structs.replace(everything[j + 1], loss=everything[j + 1].loss ^ 1)}, j + 1),
        "other start": (everything | {0: other_hash}, 0),
        "other end": (everything | {S: msgspec.structs.replace(everything[S], weights_hash=bytes(32))}, S),
    }
    for name, (openings, bad) in cases.items():
        where = rf"^block {block.hash().hex()} extrinsic #0: the source"
        with pytest.raises(CheckpointsUnavailable, match=rf"{where} (did not give|gave a bad) entry {bad}(: |$)"):
            verifier.verify_block(block, block.hash(), [claim], _Openings(openings))
        assert name
    author.db.close()
    validator.db.close()


def _altered(alter):
    """A trainer that runs the job honestly, then lets ``alter(checkpoints, losses)`` change the
    outcome in place; the transcript is rebuilt from what it leaves."""

    def train(job: ml_runtime.TrainingJob) -> ml_runtime.JobResult:
        honest = ml_runtime.run_job(job)
        checkpoints = [np.array(c, dtype=np.float32, copy=True) for c in honest.checkpoints]
        losses = [e.loss for e in honest.transcript.entries]
        alter(checkpoints, losses)
        entries = [ml_runtime.TranscriptEntry(j, ml_runtime.hash_weights(c), x) for j, (c, x) in enumerate(zip(checkpoints, losses, strict=True))]
        return ml_runtime.JobResult(checkpoints[-1], tuple(checkpoints), ml_runtime.Transcript.build(entries), True)

    return train


def _set_start_loss(checkpoints, losses) -> None:
    losses[0] = 1.0


def _poison(value: float, count: int):
    def alter(checkpoints, losses) -> None:
        checkpoints[3][:count] = np.float32(value)

    return alter


@pytest.mark.parametrize(
    ("alter", "kind", "segment", "message"),
    [
        (_set_start_loss, FAULT_START, 0, r"entry 0 has loss bits 0x3f800000, not \+0\.0$"),
        (_poison(np.inf, 1), FAULT_SEGMENT, 3, r"checkpoint 3 cannot be re-run: checkpoint contains NaN or infinity$"),
        (_poison(3e38, 10**6), FAULT_SEGMENT, 3, r"segment 3 diverges \(segment 3 diverged at step \d+: .*\), the transcript claims entry 4$"),
    ],
)
def test_a_committed_start_loss_or_unrunnable_checkpoint_is_a_fault(
    tmp_path, monkeypatch, alter, kind, segment, message
) -> None:
    """Entry 0's loss is +0.0 in an honest run; a committed checkpoint that cannot be re-run
    (not finite) or that diverges was never an honest run's. Checkpoint 3 is poisoned and the
    sample covers segment 3 (not 2, whose fault would be reported first): the parallel re-run
    fails, and the segments are re-run alone to say which one is at fault. The forger skips
    the result checks an honest author makes on its own results (verify_result_shape, which
    would leave a TRAIN with entry 0's loss not +0.0 out of its block). The largest update
    (segment 2's, into the poisoned checkpoint) is pinned into the sample: re-run, segment 2's
    fault would be the one reported."""
    monkeypatch.setattr(pol, "compute_largest_update", lambda openings, result, n: 5)
    with monkeypatch.context() as forger:
        forger.setattr(training, "verify_result_shape", lambda job, result: None)
        author, block = _author(tmp_path / "author", _altered(alter))
    validator = open_chain(tmp_path / "validator")
    claim = _claim(validator, block, 0)
    secret = next(
        s for s in (i.to_bytes(4, "little") * 8 for i in range(10_000))
        if {3, 5} <= set(compute_sample(s, block.hash(), 0, S, 3)) and 2 not in compute_sample(s, block.hash(), 0, S, 3)
    )
    source = _Openings(_all_openings(author, block, claim))
    with pytest.raises(FraudFound, match=rf"^block {block.hash().hex()} extrinsic #0: {message}") as caught:
        SampledVerifier(secret, 3).verify_block(block, block.hash(), [claim], source)
    _check_proof_elsewhere(tmp_path, caught.value, kind, segment, block)
    author.db.close()
    validator.db.close()


def test_an_honest_divergence_imports_and_every_segment_sampled_imports(tmp_path) -> None:
    """A job that diverged in segment 0 (n = 1: nothing finished, entry 0 fetched with its
    weights to re-run the divergence); an honest job with m = S, where sampled segments share
    entries (j + 1 is both an output to compare and an input with weights)."""
    author = open_chain(tmp_path / "author")
    xts = [sign(author, BOB, train_call(steps=STEPS, segment=SEGMENT, lr=3e38, l2=0.0), 0), sign(author, BOB, train_call(), 1)]
    block = author.build_block(xts, ALICE, slot=1).block
    assert block.body.results[0].diverged_segment == 0 and len(block.body.results[0].losses) == 1
    validator = open_chain(tmp_path / "validator")
    claims = [_claim(validator, block, 0), _claim(validator, block, 1, block.body.results[1])]
    source = _Openings(_all_openings(author, block, claims[0]) | {})
    recording = _Recording(source)
    fetched = SampledVerifier(b"d" * 32, 4).verify_block(block, block.hash(), claims[:1], recording)
    assert [(i, o.index, o.weights is not None) for i, o in fetched] == [(0, 0, True)]
    assert recording.asked == [(block.hash(), 0, [(0, True)])]
    second = _Openings(_all_openings(author, block, claims[1]))
    fetched = SampledVerifier(b"d" * 32, 99).verify_block(block, block.hash(), claims[1:], second)
    segments = claims[1].job.num_segments
    assert [(i, o.index, o.weights is not None) for i, o in fetched] == [(1, j, j < segments) for j in range(segments + 1)]
    validator.verifier = SampledVerifier(b"d" * 32, 2)
    validator.import_block(block, LocalSource(author.transcripts))
    # A divergence proof against the honest divergence shows no fault.
    d0 = _all_openings(author, block, claims[0])[0]
    proof = compute_fraud_proof(block, claims[0], FAULT_DIVERGENCE, 0, [d0])
    with pytest.raises(InvalidFraudProof, match=r"no divergence fault at 0$") as caught:
        verify_fraud_proof(validator.genesis_hash, validator.state_at(block.header.parent_hash), validator.config, proof)
    assert caught.value.reason == "no_fault"
    author.db.close()
    validator.db.close()


def test_m_of_zero_still_samples_one_segment(tmp_path, monkeypatch) -> None:
    """A per-block m below 1 is taken as 1 (a validator always re-runs something, and the
    job's largest update); the request is every checkpoint, as for any m."""
    author, block = _author(tmp_path / "author")
    validator = open_chain(tmp_path / "validator")
    secret = next(s for s in (bytes([i]) * 32 for i in range(1, 64)) if compute_sample(s, block.hash(), 0, S, 1) != (0,))
    sample = compute_sample(secret, block.hash(), 0, S, 1)
    source = _Recording(LocalSource(author.transcripts))
    reran: list[tuple[int, ...]] = []
    real = pol._rerun_all
    monkeypatch.setattr(pol, "_rerun_all", lambda tasks: reran.append(tuple(j for _, j, _ in tasks)) or real(tasks))
    claim = _claim(validator, block, 0)
    SampledVerifier(secret, 2, samples_for=lambda _b: 0).verify_block(block, block.hash(), [claim], source)
    largest = pol.compute_largest_update(_all_openings(author, block, claim), claim.result, S + 1)
    assert len(sample) == 1 and reran == [tuple(sorted({*sample, largest}))]  # the one segment of its sample, and the largest update
    assert source.asked == [(block.hash(), 0, _every_entry())]
    author.db.close()
    validator.db.close()


def test_m_can_be_a_chain_parameter_read_per_block(tmp_path) -> None:
    """The node's verifier takes m from the block's parent state (pol_samples, which a
    runtime-config referendum may change): ``samples_for`` is asked once per block."""
    author, block = _author(tmp_path / "author")
    secret = b"v" * 32
    validator = open_chain(tmp_path / "validator")
    asked: list[bytes] = []
    verifier = SampledVerifier(secret, 2, samples_for=lambda b: asked.append(b.hash()) or 3)
    source = _Recording(LocalSource(author.transcripts))
    verifier.verify_block(block, block.hash(), [_claim(validator, block, 0)], source)
    sample = compute_sample(secret, block.hash(), 0, S, 3)
    assert len(sample) == 3 and asked == [block.hash()]
    assert source.asked == [(block.hash(), 0, _every_entry())]
    author.db.close()
    validator.db.close()


def test_an_auditor_asks_what_a_sampled_validator_asks_and_a_validator_can_serve_it(tmp_path) -> None:
    """The auditor (--pol full) asked for the last entry's weights too, which told it apart
    from the sampled validators (so an author could refuse auditors alone), and which no
    validator held, so none could serve it (a reviewer's finding). Its request is now theirs,
    it checks the last entry by its hash, and a validator that imported the block serves it."""
    author, block = _author(tmp_path / "author")
    validator = open_chain(tmp_path / "validator")
    source = _Recording(LocalSource(author.transcripts))
    FullReexecution().verify_block(block, block.hash(), [_claim(validator, block, 0)], source)
    assert source.asked == [(block.hash(), 0, _every_entry())]
    validator.verifier = SampledVerifier(b"v" * 32, 2)
    validator.import_block(block, LocalSource(author.transcripts))
    auditor = open_chain(tmp_path / "auditor")
    auditor.verifier = FullReexecution()
    auditor.import_block(block, LocalSource(validator.transcripts))  # the author is not asked
    assert auditor.best_hash == block.hash()
    for chain in (author, validator, auditor):
        chain.db.close()


@pytest.mark.parametrize("samples", [2, S - 1])
def test_the_largest_update_is_rerun_whatever_the_sample(tmp_path, samples) -> None:
    """An outside tester's P2 (round 14): forging only the last segment sets the new version to
    any weights at all (here every weight 0.123), and a validator caught it only if its random
    sample held that segment (m/S). The jump is the job's largest update, which every validator
    now re-runs besides its sample (consensus.pol, "The largest update"): a validator whose
    sample misses the segment refuses the block with a proof of it, and a third node accepts
    the proof. An honest job's largest update re-runs clean (every other import here)."""

    def to_any_weights(job: ml_runtime.TrainingJob) -> ml_runtime.JobResult:
        out = ml_runtime.run_job(job)
        chosen = np.full_like(out.weights, np.float32(0.123))
        checkpoints = (*out.checkpoints[:-1], chosen)
        entries = list(out.transcript.entries)
        entries[-1] = ml_runtime.TranscriptEntry(len(entries) - 1, ml_runtime.hash_weights(chosen), entries[-1].loss)
        return ml_runtime.JobResult(chosen, checkpoints, ml_runtime.Transcript.build(entries), True)

    author, block = _author(tmp_path / "author", to_any_weights)
    missing = next(
        secret for secret in (bytes([i]) * 32 for i in range(1, 256))
        if S - 1 not in compute_sample(secret, block.hash(), 0, S, samples)
    )
    validator = open_chain(tmp_path / "validator", verifier=SampledVerifier(missing, samples))
    fraud = _refuse(validator, block, LocalSource(author.transcripts), FraudFound, f"segment {S - 1} re-runs to")
    assert isinstance(fraud, FraudFound) and (fraud.proof.kind, fraud.proof.segment) == (FAULT_SEGMENT, S - 1)
    _check_proof_elsewhere(tmp_path, fraud, FAULT_SEGMENT, S - 1, block)
    author.db.close()
    validator.db.close()


@pytest.mark.parametrize("alter", [_poison(np.nan, 1), _poison(np.inf, 1)])
def test_an_update_into_a_checkpoint_not_finite_counts_as_the_largest(tmp_path, monkeypatch, alter) -> None:
    """A committed checkpoint holding a NaN or an infinity makes no finite update: it counts as
    the largest (the first such segment's), so a validator whose random sample misses both
    segments around it re-runs the segment into it and proves the fault. (Weights of another
    length never come from a source, which checks them, chain.proofs.verify_opening; from a
    faulty one they count as infinite too, and the re-run finds the opening bad:
    test_a_source_that_hands_over_a_wrong_opening_makes_the_block_unavailable.)"""
    with monkeypatch.context() as forger:
        forger.setattr(training, "verify_result_shape", lambda job, result: None)
        author, block = _author(tmp_path / "author", _altered(alter))
    secret = next(s for s in (bytes([i]) * 32 for i in range(1, 256)) if not {2, 3} & set(compute_sample(s, block.hash(), 0, S, 2)))
    validator = open_chain(tmp_path / "validator", verifier=SampledVerifier(secret, 2))
    fraud = _refuse(validator, block, LocalSource(author.transcripts), FraudFound, r"segment 2 re-runs to weights [0-9a-f]{64}, entry 3 claims")
    assert isinstance(fraud, FraudFound) and (fraud.proof.kind, fraud.proof.segment) == (FAULT_SEGMENT, 2)
    author.db.close()
    validator.db.close()


def test_the_first_of_equal_largest_updates_is_chosen(tmp_path) -> None:
    """compute_largest_update on a real job's openings with their weights replaced: updates
    all of one size choose segment 0; a larger one later is chosen; the last segment's output
    is the result's weights when entry n - 1 carries none.

    Mutation testing of compute_largest_update and its call (2026-11-30, session 34: 12
    mutants by hand, /work/scratch/s34/mut_largest.py, with this file and
    test_mutants_pol.py): 9 killed. Three survive, equivalent: the initial ``largest`` of 0.0
    or ``chosen`` of 1 (every size is >= 0, so the first segment is chosen either way, and a
    job with no finished segment is never ranked: its sample is already every segment), and a
    length mismatch counted as 0.0 (only a source that breaks its contract hands one over, and
    what the verifier uses of it is verified again: the block is unavailable either way)."""
    author, block = _author(tmp_path / "author")
    claim = _claim(author, block, 0)
    openings = _all_openings(author, block, claim)
    n = S + 1

    def stepping(sizes: list[float]) -> dict[int, Opening]:
        levels = np.cumsum([0.0, *sizes]).astype(np.float32)
        return {j: msgspec.structs.replace(o, weights=np.full(650, levels[j], dtype="<f4").tobytes()) for j, o in openings.items()}

    assert pol.compute_largest_update(stepping([1.0] * S), claim.result, n) == 0
    assert pol.compute_largest_update(stepping([1.0, 1.0, 3.0, 3.0, 1.0, 1.0]), claim.result, n) == 2
    without_last = {j: o for j, o in stepping([1.0] * S).items() if j < n - 1}
    without_last[n - 1] = msgspec.structs.replace(openings[n - 1], weights=None)
    # The result's weights (all within 2 of 0) are at least S - 3 from checkpoint n - 2's (every weight S - 1):
    # the last update is the largest.
    assert np.abs(claim.result.get_weights()).max() < 2
    assert pol.compute_largest_update(without_last, claim.result, n) == n - 2
    author.db.close()
