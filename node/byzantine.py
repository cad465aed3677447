"""Faults on purpose: a node that misbehaves the way ``--byzantine MODE`` says (issue 9).

These modes exist so the devnet and the integration tests can show that honest nodes catch
and punish each fault; no honest operator runs them. Three modes:

``forge-training=F`` (F a decimal in (0, 1])
    The author's trainer (``Blockchain(trainer=...)``, the authoring hook of chain/blockchain.py)
    runs the job but replaces ``ceil(F * S)`` of its S segments with made-up checkpoints: a
    forged segment j is not run; its output checkpoint j+1 is its input checkpoint plus a small
    deterministic perturbation, and its loss is made up (that of entry j, 1.0 after entry 0,
    which has none). Training then continues honestly from the forged checkpoint, and the
    transcript (entries, Merkle root), the result, the openings, the state root and the seal are
    all computed by the normal block building from this :class:`~ml_runtime.JobResult`: the
    strongest forgery, internally consistent, which no header or link check can catch; only a
    validator that re-runs a forged segment (or a segment after one: its input is the forged
    checkpoint, its output is honest from there, so it re-runs to its entry) finds it.
    The forged segments are chosen from the job seed (keyed blake2b, person
    ``polchain/byz/frg``), so a run is reproducible. ``ceil(F * S)`` is computed exactly on the
    decimal F as written (``0.035`` is 7/200, not the binary float next to it), so
    ``forge-training=0.035`` forges 7 of 200 segments, not the 8 that ``ceil(0.035 * 200)`` gives.

``withhold-checkpoints``
    The node authors normally, but its transcript server answers not-found for every opening,
    its own blocks' included (:func:`serves_checkpoints`): a validator can then not fetch its
    checkpoints, and the block is never voted for nor built on.

``equivocate``
    In each of its slots the author seals two different blocks on the same parent and announces
    both: the normal one, to which it adds a remark of its own (:func:`equivocation_remark`, so
    the block is never empty), and an empty sibling (:func:`build_empty_sibling`). Both are
    valid; together they are an Aura equivocation, slashable with ``pol.report_equivocation``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Final

import numpy as np

import ml_runtime
from chain import calls
from chain.block import Block, Body, compute_extrinsics_root
from chain.crypto import Keypair
from chain.extrinsic import Extrinsic, sign_extrinsic
from chain.header import Header, compute_slot_digest, seal_header
from chain.pallets import balances

if TYPE_CHECKING:
    from chain.blockchain import Blockchain

log = logging.getLogger("polchain.byzantine")

FORGE_TRAINING: Final = "forge-training"
WITHHOLD_CHECKPOINTS: Final = "withhold-checkpoints"
EQUIVOCATE: Final = "equivocate"
MODES: Final = (FORGE_TRAINING, WITHHOLD_CHECKPOINTS, EQUIVOCATE)
RULE: Final = "--byzantine takes forge-training=F (F a decimal in (0, 1]), withhold-checkpoints or equivocate"
# Longest F accepted: enough digits for any fraction one means, and a bound on what is parsed.
MAX_FRACTION_TEXT: Final = 32
_PERSON_FORGE: Final = b"polchain/byz/frg"
_PERSON_NOISE: Final = b"polchain/byz/nse"
# Perturbation scale: a forged weight is w + u * 2^-10 * (1 + |w|), u uniform in [-1, 1):
# large enough never to round away, small enough to keep the weights finite and plausible.
_NOISE_SCALE: Final = np.float32(2.0**-10)

Trainer = Callable[[ml_runtime.TrainingJob], ml_runtime.JobResult]


class InvalidByzantineMode(ValueError):
    """A ``--byzantine`` value outside :data:`RULE`; the message names the rule."""


@dataclass(frozen=True, slots=True)
class Byzantine:
    """A parsed ``--byzantine`` value. ``fraction`` is set for forge-training only."""

    mode: str
    fraction: Fraction | None = None

    def __str__(self) -> str:
        if self.fraction is None:
            return self.mode
        return f"{self.mode}={float(self.fraction):g}"

    @property
    def forges(self) -> bool:
        return self.mode == FORGE_TRAINING

    @property
    def withholds(self) -> bool:
        return self.mode == WITHHOLD_CHECKPOINTS

    @property
    def equivocates(self) -> bool:
        return self.mode == EQUIVOCATE


def parse_byzantine(text: str) -> Byzantine:
    """``forge-training=F`` | ``withhold-checkpoints`` | ``equivocate``; InvalidByzantineMode
    (naming the rule and what was wrong) for anything else.

    F is a plain decimal (``0.25``, ``1``, ``.5``; no exponent, sign, ``nan`` or ``inf``) in
    (0, 1], kept exact as a Fraction.
    """
    if not isinstance(text, str):
        raise InvalidByzantineMode(f"{RULE}; got a {type(text).__name__}")
    if text in (WITHHOLD_CHECKPOINTS, EQUIVOCATE):
        return Byzantine(text)
    name, sep, value = text.partition("=")
    if name != FORGE_TRAINING:
        raise InvalidByzantineMode(f"{RULE}; got {text[:64]!r}")
    if not sep or not value:
        raise InvalidByzantineMode(f"{RULE}; forge-training needs =F, the fraction of segments to forge")
    if len(value) > MAX_FRACTION_TEXT or not _is_decimal(value):
        raise InvalidByzantineMode(f"{RULE}; F={value[:MAX_FRACTION_TEXT]!r} is not a decimal number")
    fraction = Fraction(value)
    if not 0 < fraction <= 1:
        raise InvalidByzantineMode(f"{RULE}; F={value} is outside (0, 1]")
    return Byzantine(FORGE_TRAINING, fraction)


def _is_decimal(value: str) -> bool:
    whole, _, frac = value.partition(".")
    digits = whole + frac
    return bool(digits) and digits.isascii() and digits.isdigit()


# --- forge-training ------------------------------------------------------------------------------
def count_forged(fraction: Fraction, segments: int) -> int:
    """ceil(fraction * segments), exactly: how many of a job's segments are forged."""
    return min(segments, math.ceil(fraction * segments))


def choose_forged_segments(seed: bytes, segments: int, fraction: Fraction) -> tuple[int, ...]:
    """The ``ceil(fraction * segments)`` segments to forge, sorted: those whose keyed blake2b
    of their index (key: the job seed) is smallest."""
    k = count_forged(fraction, segments)

    def rank(j: int) -> bytes:
        return hashlib.blake2b(j.to_bytes(4, "little"), key=seed, person=_PERSON_FORGE, digest_size=16).digest()

    return tuple(sorted(sorted(range(segments), key=rank)[:k]))


def perturb(weights: np.ndarray, seed: bytes, segment: int) -> np.ndarray:
    """The made-up output of a skipped segment: ``w + u * 2^-10 * (1 + |w|)``, u uniform in
    [-1, 1) from keyed blake2b (key: the job seed), all float32. Non-finite results (weights
    near the float32 maximum) fall back to the input: still a forgery, the work is skipped."""
    w = np.asarray(weights, dtype=np.float32)
    need = w.size
    stream = bytearray()
    counter = 0
    while len(stream) < need:
        stream += hashlib.blake2b(
            segment.to_bytes(4, "little") + counter.to_bytes(8, "little"),
            key=seed, person=_PERSON_NOISE, digest_size=64,
        ).digest()
        counter += 1
    u = np.frombuffer(bytes(stream[:need]), dtype=np.int8).astype(np.float32) / np.float32(128.0)
    with np.errstate(all="ignore"):
        out = (w + u * _NOISE_SCALE * (np.float32(1.0) + np.abs(w))).astype(np.float32)
    return np.where(np.isfinite(out), out, w).astype(np.float32)


def run_forged_job(job: ml_runtime.TrainingJob, forged: frozenset[int] | set[int] | tuple[int, ...]) -> ml_runtime.JobResult:
    """:func:`ml_runtime.run_job`, except that the segments in ``forged`` are not run (see the
    module docstring). Divergence of an honest segment ends the result as run_job's does."""
    forged_set = frozenset(forged)
    w = np.array(job.weights, dtype=np.float32, copy=True)
    checkpoints = [w.copy()]
    entries = [ml_runtime.TranscriptEntry(0, ml_runtime.hash_weights(w), 0.0)]
    for j in range(job.num_segments):
        if j in forged_set:
            w = perturb(w, job.seed, j)
            previous = entries[-1].loss
            entry = ml_runtime.TranscriptEntry(j + 1, ml_runtime.hash_weights(w), previous if j > 0 else 1.0)
        else:
            try:
                entry, w = ml_runtime.recompute_segment(job, j, w)
            except ml_runtime.NonFiniteWeights as exc:
                return ml_runtime.JobResult(
                    weights=checkpoints[-1], checkpoints=tuple(checkpoints),
                    transcript=ml_runtime.Transcript.build(entries), finite=False,
                    diverged_segment=j, diverged_step=exc.step,
                )
        checkpoints.append(w.copy())
        entries.append(entry)
    return ml_runtime.JobResult(w, tuple(checkpoints), ml_runtime.Transcript.build(entries), True)


def forging_trainer(fraction: Fraction) -> Trainer:
    """The authoring hook of a ``forge-training=F`` node."""

    def trainer(job: ml_runtime.TrainingJob) -> ml_runtime.JobResult:
        forged = choose_forged_segments(job.seed, job.num_segments, fraction)
        log.warning(
            "byzantine: forging segments %s of %d of job 0x%s… (forge-training=%g)",
            list(forged), job.num_segments, job.seed.hex()[:12], float(fraction),
        )
        return run_forged_job(job, forged)

    return trainer


def trainer_for(mode: Byzantine | None) -> Trainer:
    """The trainer a node with ``mode`` authors with (the honest ml_runtime.run_job unless forging)."""
    if mode is not None and mode.forges:
        assert mode.fraction is not None
        return forging_trainer(mode.fraction)
    return ml_runtime.run_job


# --- withhold-checkpoints --------------------------------------------------------------------------
def serves_checkpoints(mode: Byzantine | None) -> bool:
    """False for a withholding node: its transcript server answers not-found to every request."""
    return mode is None or not mode.withholds


# --- equivocate ------------------------------------------------------------------------------------
def equivocation_remark(chain: Blockchain, author: Keypair, candidates: Sequence[Extrinsic], slot: int) -> Extrinsic:
    """A remark signed by ``author``, to add to its normal block's ``candidates`` (the pool's
    ready extrinsics, so the author's own come in nonce order from its account's nonce): the
    normal block then holds at least this, and its empty sibling always differs from it."""
    own = sum(1 for xt in candidates if xt.signer == author.public)
    nonce = balances.get_account(chain.state.overlay(), author.public).nonce + own
    return sign_extrinsic(
        author, calls.Remark(b"polchain/byzantine/equivocate/" + slot.to_bytes(8, "big")), nonce=nonce,
        genesis_hash=chain.genesis_hash, spec_version=chain.runtime.spec_version,
    )


def build_empty_sibling(chain: Blockchain, block: Block, author: Keypair) -> Block:
    """A second block of ``block``'s author in ``block``'s slot on ``block``'s parent, with no
    extrinsics: valid on its own, an equivocation together with ``block`` (the same block if
    ``block`` is empty too: the caller checks).

    Its state is the parent's after the runtime's per-block hook (``Runtime.on_initialize``: an
    era start may change the validator set), and its proof-of-learning commitment is the one of
    any block without training, the genesis block's (taken from the genesis header rather than
    rebuilt, so this stays right whatever the commitment's fields are).
    """
    header = block.header
    overlay = chain.state_at(header.parent_hash)
    chain.runtime.on_initialize(overlay, header.number, author.public, header.parent_hash)
    state_root = chain.state.compute_commit(overlay).root
    pol_digest = chain.get_header(chain.genesis_hash).digest  # the genesis header's one item
    sibling = Header(
        header.parent_hash, header.number, state_root, compute_extrinsics_root([]), header.slot,
        author.public, (compute_slot_digest(header.slot), *pol_digest),
    )
    return Block(seal_header(author, chain.genesis_hash, sibling), Body())
