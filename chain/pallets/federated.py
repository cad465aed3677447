"""Federated learning with verified updates: private data, public proof (issue 11).

A round improves one model version with data that never goes on chain. It runs in five
steps, each a call of this pallet:

1. **Open** (the model's owner): the base version, who may take part (anyone, or an
   allowlist), the local job (steps, batch size, learning rate, decay, segment length),
   ``samples`` = m segments challenged per update, a minimum and maximum number of updates,
   a bond per participant, a reward pool (reserved from the owner now), and two deadlines
   in block numbers.
2. **Commit** (each participant, up to ``commit_deadline``): the RFC 6962 Merkle root of its
   rows' canonical bytes (the data sets' row format, chain/pallets/datasets.py) and their
   count; the weights local training produced; the transcript root, every entry's loss,
   and the audit paths of entries 0 and S. The pallet checks that entry 0 is the base
   version's weights and entry S the submitted weights, so a transcript is pinned at both
   ends; the bond is reserved, and must leave free the fees of the participant's reveals
   (:func:`compute_commit_reserve`, InsufficientFreeAfterCommit). An update may name a
   registered data set whose rows it used (same root and count): the data set's provider is paid price_per_row x rows used
   (local_steps x batch_size), as for a TRAIN call.
3. **Challenge** (anyone, after ``commit_deadline``): the challenge seed becomes
   ``blake2_256("polchain/fl/chal" || round || hash of block commit_deadline)``, read from
   this chain's recent block hashes (chain.pallets.system): unknown when the updates were
   committed, and the same whoever sends the call and whenever, so nobody can pick the block
   it depends on by choosing when to challenge. Only the author of the deadline block itself
   could grind it (by varying that block's contents), as with any block-hash randomness; a
   VRF (BABE's) would close that too. After ``system.BLOCK_HASH_COUNT`` blocks the hash is
   gone and the round can no longer be challenged (ChallengeExpired): it is closed as failed. Each participant's
   challenged segments are ``ml_runtime.sample_segments(seed, account, S, m)``.
4. **Reveal** (each participant, per challenged segment, up to ``reveal_deadline``): the
   starting checkpoint with its audit path, the weights hash of the next entry with its
   path, and the rows the segment's batches use with their paths under the data root.
5. **Verify** happens inside the reveal's dispatch: every node executing the block
   re-runs the segment with ``ml_runtime.verify_segment``, the function block import uses
   for TRAIN segments, and compares bits. A well-formed reveal that does not re-run to the
   committed entry excludes the update at once and forfeits its bond to the reward pool. A
   malformed reveal (bad path, rows of the wrong size, an unchallenged segment) is a
   DispatchError that changes nothing but the fee; the participant may try again until the
   deadline.
6. **Close** (anyone, after ``reveal_deadline``, or earlier once every update is decided):
   updates with every challenged segment verified are accepted, the rest excluded (bond to
   the pool). With at least ``min_updates`` accepted, the chain stores their FedAvg
   (ml_runtime.fedavg: sample-count weights, rows in ascending account id order, bit-exact)
   as the model's next version, parent = the base version, with a lineage record naming
   the round and each accepted participant's data root, transcript root and sample count;
   the pool is paid pro rata to sample counts (floor; the remainder to the owner) and the
   accepted get their bonds back. A sample count counts at most the rows the job draws,
   local_steps x batch_size (:func:`compute_counted_samples`). With fewer, the round fails:
   the accepted get their bonds back, the pool returns to the owner and the forfeited bonds
   are burned (the owner, who sets the round's parameters, gains nothing from a failure).

**Copied updates** are not refused at commit: refusing the second of two equal updates
would let anyone who sees an update in the pool front-run it with a copy and lock its owner
out of the round. A copy is excluded anyway, and loses its bond: its batches are seeded by
its own account, so its segments do not re-run to the copied transcript, even with the
original's rows in hand (and without them it cannot reveal at all).

**Batches and what a reveal shows.** A participant's job is an ordinary
``ml_runtime.TrainingJob`` over its n rows with seed ``blake2_256("polchain/fl/batch" ||
round || account)``: fixed by the round and the account, so nobody picks batches. Step t's
batch is ``ml_runtime.batch_indices(seed, t, 1, n, B)``, row indices into the participant's
n rows. Segment j uses the distinct indices of its L steps (at most L·B rows); the reveal
carries exactly those rows, ascending, each with its audit path (leaf index = row index,
leaf count = n from the commit). The validator builds x (n × d) and y with the revealed rows
at their indices and zeros elsewhere: the kernels read only the rows a batch names, so
re-running segment j over that array gives the participant's bits. Everything else stays
private: per participant at most m·L·B rows of n are revealed (fewer when batches repeat
rows), plus m+1 checkpoints of the model the round is training anyway.

**Limits** (checked at open, before any work): everything a round can make the chain do
is bounded by the runtime config (steps, batch, segments, block weight and length), a
reveal must fit one extrinsic at the worst case (n up to MAX_ROWS), a participant's data
array (x and y, n·(d + 1), or n·(d + k) for a linear model) at most MAX_CELLS float32s (what
a validator allocates to re-run a segment), and
sample counts sum to at most ml_runtime.fedavg.MAX_SAMPLES.

**Limits lowered mid-round** (tester19's E4). The opening sizes the reveal window for the block
limits of its block, but a referendum may lower ``max_block_weight`` (or ``max_block_length``)
while the round runs: fewer reveals then fit a block (each still fits one alone:
chain.runtime.SETTLING_CALLS, democracy.MIN_GOVERNED_BLOCK_LENGTH), honest reveals missed the
deadline, and their bonds went to those who got in, so a voter for the referendum could
profit. Two rules, because neither alone holds:

- the challenge sizes the window again, for the updates actually committed at the limits in
  force then, and moves ``reveal_deadline`` out to fit (never in; at most MAX_ROUND_BLOCKS
  after the opening; ``RevealDeadlineExtended``). This covers a lowering enacted before the
  challenge with no cost: a withholder still loses its bond. It cannot cover a lowering
  enacted during the window, which no call can see coming;
- the round keeps the fewest reveals a block (:func:`compute_reveals_per_block`) the limits
  allowed, as the challenge and then every reveal dispatched saw them (``reveal_rate``: one
  comparison a reveal, one write the first time it falls). A reveal alone always fits a block
  and reveals are operational, so while an honest reveal waits, a block of the lowered limits
  takes one and records the rate (unless other operational calls outbid it for the whole
  lowering, which a round's window never assumed away); a lowering no reveal saw kept no
  reveal out. At close, if the window could not hold the round's reveals (participants x
  samples) at that rate (:func:`compute_window_capacity`), every update still unrevealed is
  ``excused``: out of the aggregate, its bond returned, not forfeited (``UpdateExcused``; on a
  failed round with the other unexcluded bonds). The cost, accepted: in that case a participant who withheld its
  reveal on purpose is refunded too (the accepted lose the forfeit they would have shared), and
  a lowering late in the window refunds as one early in it would, since the rate does not say
  when it fell. Only a referendum (10% of all POL turning out, a majority) can cause it, and it
  buys a withholder its own bond back, never anyone else's. The close does not read its own
  block's limits: a lowering enacted after the window kept no reveal out, and counting it
  would refund withholders for nothing.

The alternatives were weaker against an adversary: the challenge's extension alone leaves a
lowering timed inside the window (what a voter who holds a committed update would time);
refunding at close alone refunds every withholder of every round a lowering touched, even one
the extension would have made whole; and reading the limits only at close misses a lowering
reversed before the close (two referenda), or counts one enacted after the window.

**Known limit.** The challenge randomness is the hash of the commit-deadline block (step 3,
from ``system.BlockHash``), so only that block's author could grind it, by varying the block.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import msgspec
import numpy as np

import ml_runtime
from chain.calls import (
    MAX_FL_REVEAL_ROWS,
    MAX_FL_WEIGHTS,
    MAX_ROWS_CHUNK,
    ChallengeRound,
    CloseRound,
    CommitUpdate,
    OpenRound,
    RevealSegment,
    compute_f32_value,
)
from chain.codec import U32, AccountId, Balance, BlockNumber, Hash32, Wire
from chain.crypto import blake2_256
from chain.errors import DispatchError, FutureTransaction
from chain.extrinsic import MAX_EXTRINSIC_SIZE
from chain.pallets import balances, datasets, licenses, models, revenue, system, training
from chain.pallets.context import CallContext, PostDispatchInfo
from chain.pallets.items import StateAccess, StorageMap, StorageValue
from ml_runtime import fedavg, transcript

if TYPE_CHECKING:
    from chain.config import RuntimeConfig

PALLET = "federated"
ESCROW_ACCOUNT = revenue.compute_pallet_account(b"py/fedlr")  # holds bonds and reward pools
#: A reveal with every variable part empty and its numbers at their largest: with
#: compute_reveal_bound, the longest reveal extrinsic (compute_commit_reserve).
_EMPTY_REVEAL = RevealSegment(2**32 - 1, 2**32 - 1, b"", (), bytes(32), (), b"", ())
MAX_UPDATES = 64  # updates per round: bounds a round's state and the work of closing it
MAX_ROUND_BLOCKS = 100_000  # how far ahead a deadline may be
MAX_CELLS = 1 << 22  # n rows x d features a validator materialises to re-run a segment
MAX_ROW_PATH = 20  # ceil(log2(ml_runtime.MAX_ROWS)): the longest row audit path
BASE_WEIGHT = 200_000
FEDAVG_WEIGHT = 32  # per parameter of each update a close averages (benches/weights.py)
CELL_WEIGHT = 4  # per number of a participant's data array a reveal materialises (about 2 ns: 9 ms for 4.2M)
_PERSON_BATCH = b"polchain/fl/batch"
_PERSON_CHALLENGE = b"polchain/fl/chal"

# Round and update status values.
OPEN, REVEALING, CLOSED, FAILED = "open", "revealing", "closed", "failed"
# EXCUSED: left unrevealed by a window the block limits no longer let hold the round's reveals
# (see "Limits lowered mid-round" above): out of the aggregate like an excluded update, its bond
# returned.
COMMITTED, ACCEPTED, EXCLUDED, EXCUSED = "committed", "accepted", "excluded", "excused"


class RoundInfo(Wire, frozen=True):
    owner: AccountId
    model: U32
    base_version: U32
    allowlist: tuple[AccountId, ...]
    local_steps: U32
    batch_size: U32
    lr: U32
    l2: U32
    segment_len: U32
    samples: U32
    min_updates: U32
    max_updates: U32
    bond: Balance
    reward_pool: Balance
    commit_deadline: BlockNumber
    reveal_deadline: BlockNumber
    opened_at: BlockNumber
    status: str = OPEN
    participants: tuple[AccountId, ...] = ()  # in commit order
    total_samples: U32 = 0
    forfeited: Balance = 0  # bonds of excluded updates, added to the pool
    challenge_seed: Hash32 | None = None
    new_version: U32 | None = None
    # The fewest reveals a block the block limits allowed (compute_reveals_per_block): at the
    # opening; from the challenge on, since the challenge, as the challenge and each reveal saw them.
    reveal_rate: U32 = 0
    challenged_at: BlockNumber = 0  # the block of the challenge: reveals come after it

    @property
    def segments(self) -> int:
        return -(-self.local_steps // self.segment_len)


class UpdateInfo(Wire, frozen=True):
    data_root: Hash32
    row_count: U32
    sample_count: U32
    weights_hash: Hash32
    transcript_root: Hash32
    losses: tuple[U32, ...]
    committed_at: BlockNumber
    status: str = COMMITTED
    verified: tuple[U32, ...] = ()  # challenged segments that re-ran to the committed bits
    reason: str = ""  # why an update was excluded
    reward: Balance = 0


class LineageEntry(Wire, frozen=True):
    participant: AccountId
    data_root: Hash32
    row_count: U32
    transcript_root: Hash32
    sample_count: U32


class FederatedLineage(Wire, frozen=True):
    """How a federated version was made: the round and each accepted update, in FedAvg order."""

    round: U32
    entries: tuple[LineageEntry, ...]


NEXT_ROUND = StorageValue("Federated", "NextRound", int, 0)
ROUNDS = StorageMap("Federated", "Rounds", RoundInfo)
UPDATES = StorageMap("Federated", "Updates", UpdateInfo)  # (round, account)
UPDATE_WEIGHTS = StorageMap("Federated", "UpdateWeights", bytes)  # (round, account)
LINEAGE = StorageMap("Federated", "Lineage", FederatedLineage)  # (model, version)


def _fail(error: str, message: str) -> DispatchError:
    return DispatchError(PALLET, error, message)


# --- pure functions shared by the pallet, the participant's client and the validators -------


def compute_batch_seed(round_id: int, account: bytes) -> bytes:
    """The participant's job seed: fixed by the round and the account, known before training."""
    return blake2_256(_PERSON_BATCH + struct.pack("<I", round_id) + account)


def compute_challenge_seed(round_id: int, deadline_hash: bytes) -> bytes:
    return blake2_256(_PERSON_CHALLENGE + struct.pack("<I", round_id) + deadline_hash)


def compute_challenged(info: RoundInfo, account: bytes) -> tuple[int, ...]:
    """The segments of ``account``'s update that must be revealed (sorted); () before the challenge."""
    if info.challenge_seed is None:
        return ()
    return ml_runtime.sample_segments(info.challenge_seed, account, info.segments, info.samples)


def compute_row_dtype(spec: ml_runtime.ModelSpec) -> np.dtype:
    """The canonical row of a model's data (chain/pallets/datasets.py's row format)."""
    if spec.family == "linear":
        return np.dtype([("x", "<f4", (spec.d,)), ("y", "<f4", (spec.k,))])
    return np.dtype([("x", "<f4", (spec.d,)), ("y", "<u4")])


def compute_row_leaves(spec: ml_runtime.ModelSpec, x: np.ndarray, y: np.ndarray) -> list[bytes]:
    """Each row's canonical bytes: the leaves of the data root."""
    rows = np.empty(x.shape[0], dtype=compute_row_dtype(spec))
    rows["x"] = x
    rows["y"] = y
    raw = rows.tobytes()
    size = rows.dtype.itemsize
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def compute_leaf_paths(leaves: list[bytes], indices: list[int]) -> dict[int, tuple[bytes, ...]]:
    """RFC 6962 audit paths of the raw leaves at ``indices`` under
    ml_runtime.compute_merkle_root(leaves), leaf's sibling first, in one pass over the tree:
    each subtree is hashed once (O(n) hashes for any number of paths, where one
    ml_runtime.transcript-style walk per path would cost O(n) each)."""
    wanted = sorted(set(indices))
    paths: dict[int, list[bytes]] = {i: [] for i in wanted}

    def walk(hashes: list[bytes], first: int, inside: list[int]) -> bytes:
        if len(hashes) == 1:
            return hashes[0]
        k = transcript._split(len(hashes))
        left_in = [i for i in inside if i < first + k]
        right_in = [i for i in inside if i >= first + k]
        left, right = walk(hashes[:k], first, left_in), walk(hashes[k:], first + k, right_in)
        for i in left_in:
            paths[i].append(right)
        for i in right_in:
            paths[i].append(left)
        return transcript._node(left, right)

    walk([transcript._h(b"\x00" + leaf) for leaf in leaves], 0, wanted)
    return {i: tuple(p) for i, p in paths.items()}


def verify_leaf_path(root: bytes, leaf: bytes, path: tuple[bytes, ...], index: int, count: int) -> bool:
    """Whether ``path`` shows raw ``leaf`` at ``index`` of ``count`` leaves under ``root``."""
    try:
        return transcript._fold(index, count, transcript._h(b"\x00" + leaf), list(path)) == root
    except ml_runtime.ProofError:
        return False


def compute_segment_rows(seed: bytes, info: RoundInfo, j: int, n: int) -> np.ndarray:
    """The distinct row indices segment j's batches use, ascending."""
    start = j * info.segment_len
    steps = min(info.segment_len, info.local_steps - start)
    return np.unique(ml_runtime.batch_indices(seed, start, steps, n, info.batch_size))


def compute_job(
    info: RoundInfo, spec: ml_runtime.ModelSpec, base: np.ndarray, account: bytes, x: np.ndarray, y: np.ndarray,
    round_id: int,
) -> ml_runtime.TrainingJob:
    """The participant's local job (the same for the participant and for a validator's re-run)."""
    return ml_runtime.TrainingJob(
        spec, base, x, y, info.local_steps, info.batch_size, compute_f32_value(info.lr),
        compute_f32_value(info.l2), compute_batch_seed(round_id, account), info.segment_len,
    )


def compute_entry(index: int, weights_hash: bytes, loss_bits: int) -> ml_runtime.TranscriptEntry:
    return ml_runtime.TranscriptEntry(index, weights_hash, float(np.uint32(loss_bits).view(np.float32)))


def compute_commit(round_id: int, data_root: bytes, n: int, sample_count: int, result: ml_runtime.JobResult) -> CommitUpdate:
    """The CommitUpdate for a finished local job."""
    t = result.transcript
    return CommitUpdate(
        round_id, data_root, n, sample_count, np.asarray(result.weights, dtype="<f4").tobytes(), t.root,
        tuple(int(np.float32(e.loss).view(np.uint32)) for e in t.entries),
        ml_runtime.merkle_proof(t, 0), ml_runtime.merkle_proof(t, len(t.entries) - 1),
    )


def compute_reveal(
    round_id: int, info: RoundInfo, j: int, result: ml_runtime.JobResult, leaves: list[bytes], account: bytes,
) -> RevealSegment:
    """The RevealSegment of segment j for a participant holding ``leaves`` (its rows)."""
    t = result.transcript
    rows = compute_segment_rows(compute_batch_seed(round_id, account), info, j, len(leaves)).tolist()
    paths = compute_leaf_paths(leaves, rows)
    return RevealSegment(
        round_id, j, np.asarray(result.checkpoints[j], dtype="<f4").tobytes(), ml_runtime.merkle_proof(t, j),
        t.entries[j + 1].weights_hash, ml_runtime.merkle_proof(t, j + 1),
        b"".join(leaves[r] for r in rows), tuple(paths[r] for r in rows),
    )


# --- reads ------------------------------------------------------------------------------------


def get_round(state: StateAccess, round_id: int) -> RoundInfo:
    info = ROUNDS.get(state, round_id)
    if info is None:
        raise _fail("UnknownRound", f"no federated round with id {round_id}")
    return info


def get_spec(state: StateAccess, info: RoundInfo) -> ml_runtime.ModelSpec:
    return models.decode_spec(models.get_model(state, info.model).spec)


# --- escrow -----------------------------------------------------------------------------------


def compute_weight(state: StateAccess, call: OpenRound | CommitUpdate | ChallengeRound | RevealSegment | CloseRound) -> int:
    """What a federated call declares before dispatch, in work units (the fee is withdrawn on
    it): an open reading the base version's weights (models.compute_weights_read_weight; a
    fixed weight let a refused open read 1 MiB and be sent again and again), a reveal the re-run
    of its segment, a close (or a challenge, which may fail the round) FedAvg over the round's
    updates and their payouts; BASE_WEIGHT for an unknown model or round."""
    if isinstance(call, OpenRound):
        owned = models.MODELS.get(state, call.model)
        try:
            return BASE_WEIGHT + (0 if owned is None else models.compute_weights_read_weight(ml_runtime.ModelSpec.decode(owned.spec)))
        except ml_runtime.MLRuntimeError:
            return BASE_WEIGHT
    if isinstance(call, CommitUpdate):
        return BASE_WEIGHT + 20 * (len(call.weights) + 34 * len(call.losses))
    info = ROUNDS.get(state, call.round)
    model = None if info is None else models.MODELS.get(state, info.model)
    if info is None or model is None:
        return BASE_WEIGHT
    try:
        spec = ml_runtime.ModelSpec.decode(model.spec)
    except ml_runtime.MLRuntimeError:
        return BASE_WEIGHT
    if isinstance(call, RevealSegment):
        return compute_reveal_weight(spec, info)
    return compute_close_weight(spec, len(info.participants))


# --- open -------------------------------------------------------------------------------------


# The largest reveal call a signed extrinsic carries: MAX_EXTRINSIC_SIZE less the envelope
# (signer, signature, nonce, tip, era) and an empty reveal's own bytes, which
# compute_reveal_bound counts again. Half a block alone let a round open whose reveals no pool
# took (2.24 MB at batch 940 on a 512-feature model), and the participants' bonds went to the
# owner at close (an outside tester's finding, round 5).
MAX_REVEAL_CALL = MAX_EXTRINSIC_SIZE - balances.compute_longest_length(_EMPTY_REVEAL)


def compute_reveal_bound(spec: ml_runtime.ModelSpec, call: OpenRound | RoundInfo) -> int:
    """Upper bound of a RevealSegment's encoding for this round's parameters (any n <= MAX_ROWS):
    one checkpoint's weights (the end is a hash), two transcript paths, and each row the
    segment's batches may draw with its path. (It counted the weights twice, which refused
    every round on a model of 2^18 parameters once the bound met the 2 MiB extrinsic.)"""
    row_size = compute_row_dtype(spec).itemsize
    rows = call.segment_len * call.batch_size
    path = 3 + MAX_ROW_PATH * 34  # array header + (bin8 header + 32 bytes) per hash
    weights = 5 + 4 * spec.param_count
    return 64 + weights + 2 * path + 5 + rows * (row_size + path)


def compute_row_cells(spec: ml_runtime.ModelSpec) -> int:
    """Numbers a row takes in the data array a reveal materialises: d features, and a label
    (k targets for a linear model)."""
    return spec.d + (spec.k if spec.family == "linear" else 1)


def compute_max_rows(spec: ml_runtime.ModelSpec) -> int:
    """The most rows (n) an update may commit for this model: MAX_ROWS, and MAX_CELLS numbers
    of x and y together. (The bound counted x alone: a linear model of one feature and 4,096
    targets admitted 2^20 rows, whose y a reveal allocated and copied as 16 GiB.)"""
    return min(ml_runtime.MAX_ROWS, MAX_CELLS // compute_row_cells(spec))


def compute_reveal_weight(spec: ml_runtime.ModelSpec, info: OpenRound | RoundInfo, n: int | None = None) -> int:
    """Work units of a reveal by a participant of ``n`` rows: the segment's re-run, hashing its
    rows and paths, and materialising the participant's whole data array (x of n x d and y,
    zeros but the revealed rows, checked and copied into the job: CELL_WEIGHT a number).

    n is the participant's own (its commit's row_count), which the weight, computed without
    the sender, cannot read: a reveal declares the largest n a commit admits
    (:func:`compute_max_rows`, the default) and reports its update's own n after dispatch
    (the executive refunds the rest, Substrate's ``PostDispatchInfo``). A fixed part let a
    reveal of one step of batch 1 over 2^20 rows of a 4-feature model cost 8.5 ms at about
    214,000 units (benches/weights.py)."""
    row_size = compute_row_dtype(spec).itemsize
    rows = info.segment_len * info.batch_size
    cells = (compute_max_rows(spec) if n is None else n) * compute_row_cells(spec)
    return (
        BASE_WEIGHT + ml_runtime.train_cost(spec, info.batch_size, info.segment_len, 1)
        + 20 * rows * (row_size + 34 * MAX_ROW_PATH) + CELL_WEIGHT * cells
    )


def compute_close_weight(spec: ml_runtime.ModelSpec, updates: int) -> int:
    """Work units of closing over ``updates`` committed updates: FedAvg of their weight
    vectors (FEDAVG_WEIGHT a parameter of each: reading and stacking the vectors and the
    kernel's row-order pass, 6-22 ns a number, about 380 ms for 64 updates of 2^18
    parameters; at 4 units it was about 70 million units), and the reads, payouts and writes
    of each. Opening checks the most a round admits (max_updates) against a block; a close
    or challenge declares the updates committed, so a referendum that lowers the block
    weight after the opening leaves a round of few updates closable (it declared
    max_updates, and one update's round stayed in escrow: an outside tester's finding)."""
    return BASE_WEIGHT + updates * (FEDAVG_WEIGHT * spec.param_count + 50_000)


def compute_reveals_per_block(config: RuntimeConfig, spec: ml_runtime.ModelSpec, info: OpenRound | RoundInfo) -> int:
    """How many of a round's reveals a block holds under ``config``, each block giving them half
    its length and weight (as a single reveal may take at most half a block), each reveal at its
    bound (compute_reveal_bound, compute_reveal_weight); at least one, since a reveal alone
    always fits a block (its weight capped at the block's, chain.runtime.SETTLING_CALLS, and a
    block no shorter than the longest extrinsic, democracy.MIN_GOVERNED_BLOCK_LENGTH)."""
    by_length = (config.max_block_length // 2) // compute_reveal_bound(spec, info)
    by_weight = (config.max_block_weight // 2) // compute_reveal_weight(spec, info)
    return max(1, min(by_length, by_weight))


def compute_reveal_blocks(reveals: int, per_block: int) -> int:
    """The blocks ``reveals`` reveals need at ``per_block`` a block."""
    return -(-reveals // per_block)


def _verify_open(ctx: CallContext, call: OpenRound, spec: ml_runtime.ModelSpec) -> None:
    cfg, now = ctx.config, ctx.block.number
    lr, l2 = compute_f32_value(call.lr), compute_f32_value(call.l2)
    if not 1 <= call.local_steps <= cfg.max_train_steps:
        raise _fail("InvalidSteps", f"local_steps must be in 1..{cfg.max_train_steps}, got {call.local_steps}")
    if not 1 <= call.batch_size <= cfg.max_train_batch:
        raise _fail("InvalidBatchSize", f"batch_size must be in 1..{cfg.max_train_batch}, got {call.batch_size}")
    if not (np.isfinite(lr) and lr > 0):
        raise _fail("InvalidLearningRate", f"lr must be a finite float32 > 0, got {lr}")
    if not (np.isfinite(l2) and l2 >= 0):
        raise _fail("InvalidDecay", f"l2 must be a finite float32 >= 0, got {l2}")
    training.verify_decay(PALLET, lr, l2)
    if not 1 <= call.segment_len <= call.local_steps:
        raise _fail("InvalidSegmentLength", f"segment_len must be in 1..local_steps ({call.local_steps}), got {call.segment_len}")
    segments = -(-call.local_steps // call.segment_len)
    if segments > cfg.max_segments:
        raise _fail("TooManySegments", f"{segments} segments; the limit is {cfg.max_segments}")
    if not 1 <= call.samples <= segments:
        raise _fail("InvalidSamples", f"samples (segments challenged per update) must be in 1..{segments}, got {call.samples}")
    if len(set(call.allowlist)) != len(call.allowlist):
        raise _fail("DuplicateParticipant", "the allowlist names an account twice")
    cap = len(call.allowlist) if call.allowlist else MAX_UPDATES
    if not 1 <= call.min_updates <= call.max_updates <= min(cap, MAX_UPDATES):
        raise _fail(
            "InvalidUpdateCounts",
            f"need 1 <= min_updates ({call.min_updates}) <= max_updates ({call.max_updates}) <= {min(cap, MAX_UPDATES)}"
            + (" (the allowlist's size)" if call.allowlist and cap < MAX_UPDATES else ""),
        )
    if not now < call.commit_deadline < call.reveal_deadline - 1 or call.reveal_deadline > now + MAX_ROUND_BLOCKS:
        raise _fail(
            "InvalidDeadlines",
            f"need {now} < commit_deadline ({call.commit_deadline}) < reveal_deadline - 1 ({call.reveal_deadline} - 1) "
            f"and reveal_deadline <= {now + MAX_ROUND_BLOCKS}",
        )
    if spec.d > MAX_CELLS // call.batch_size:
        raise _fail("DataTooLarge", f"batch_size x features = {call.batch_size * spec.d} exceeds {MAX_CELLS} values")
    if 4 * spec.param_count > MAX_FL_WEIGHTS:
        raise _fail(
            "ModelTooLarge",
            f"an update of {spec.param_count:,} parameters is {4 * spec.param_count:,} bytes; "
            f"a commit and a reveal carry at most {MAX_FL_WEIGHTS:,}",
        )
    rows, row_size = call.segment_len * call.batch_size, compute_row_dtype(spec).itemsize
    if rows * row_size > MAX_ROWS_CHUNK or rows > MAX_FL_REVEAL_ROWS:
        # A reveal's fields have bounds of their own (chain.calls): within the extrinsic, a
        # rows field past 1 MiB decoded nowhere (a reviewer's finding, round 5).
        raise _fail(
            "RevealTooLarge",
            f"a reveal's rows could take {rows * row_size:,} bytes ({rows:,} rows of {row_size:,}); its rows field holds "
            f"at most {MAX_ROWS_CHUNK:,}" + (f" and {MAX_FL_REVEAL_ROWS:,} rows" if rows > MAX_FL_REVEAL_ROWS else ""),
        )
    reveal = compute_reveal_bound(spec, call)
    if reveal > min(cfg.max_block_length // 2, MAX_REVEAL_CALL):
        raise _fail(
            "RevealTooLarge",
            f"a reveal could take {reveal:,} bytes; at most half a block ({cfg.max_block_length // 2:,}), and a signed "
            f"extrinsic carries at most {MAX_EXTRINSIC_SIZE:,} bytes (a reveal's call {MAX_REVEAL_CALL:,})",
        )
    reveal_weight = compute_reveal_weight(spec, call)
    weight = max(reveal_weight, compute_close_weight(spec, call.max_updates))
    if weight > cfg.max_block_weight:
        raise _fail("SegmentTooHeavy", f"re-running a segment or closing could take {weight} work units; a block holds {cfg.max_block_weight}")
    # Room for every reveal the round may need, each block giving them half its length and
    # weight (as a single reveal may take at most half a block), in the blocks after the one
    # that may hold the challenge. A window too short for them failed every round that used
    # it honestly, its participants' bonds forfeited (an outside tester's finding, round 7).
    reveals = call.max_updates * call.samples
    per_block = compute_reveals_per_block(cfg, spec, call)
    needed = compute_reveal_blocks(reveals, per_block)
    if call.reveal_deadline - call.commit_deadline - 1 < needed:
        raise _fail(
            "RevealWindowTooShort",
            f"up to {reveals} reveals (max_updates x samples) at {per_block} a block need {needed} blocks after the "
            f"challenge's; blocks {call.commit_deadline + 2}..{call.reveal_deadline} are "
            f"{call.reveal_deadline - call.commit_deadline - 1}",
        )


def _verify_base_not_forged(state: StateAccess, model: int, version: int) -> None:
    """ForgedVersion if the version a round starts from was made by a TRAIN proven forged: its
    aggregate would carry the forgery on as a clean version, as training from it would
    (training.ForgedVersion; an outside tester's finding, round 7)."""
    if models.is_version_forged(state, model, version):
        raise _fail(
            "ForgedVersion", f"version {version} of model {model} was made by a TRAIN proven forged; open the round on another"
        )


def apply_open_round(ctx: CallContext, call: OpenRound) -> None:
    models.verify_owner(ctx.state, call.model, ctx.sender)
    models.get_weights(ctx.state, call.model, call.base_version)  # UnknownVersion
    _verify_base_not_forged(ctx.state, call.model, call.base_version)
    spec = models.decode_spec(models.get_model(ctx.state, call.model).spec)
    _verify_open(ctx, call, spec)
    balances.apply_hold(ctx.state, PALLET, ESCROW_ACCOUNT, ctx.sender, call.reward_pool, ctx.config.existential_deposit, "the reward pool")
    round_id = NEXT_ROUND.get(ctx.state)
    c = call
    info = RoundInfo(
        ctx.sender, c.model, c.base_version, c.allowlist, c.local_steps, c.batch_size, c.lr, c.l2, c.segment_len,
        c.samples, c.min_updates, c.max_updates, c.bond, c.reward_pool, c.commit_deadline, c.reveal_deadline,
        ctx.block.number, reveal_rate=compute_reveals_per_block(ctx.config, spec, call),
    )
    ROUNDS.apply_set(ctx.state, info, round_id)
    NEXT_ROUND.apply_set(ctx.state, round_id + 1)
    ctx.emit(PALLET, "RoundOpened", round=round_id, model=call.model, base_version=call.base_version, owner=ctx.sender)


# --- commit -----------------------------------------------------------------------------------


def compute_commit_reserve(config: RuntimeConfig, spec: ml_runtime.ModelSpec, info: OpenRound | RoundInfo) -> int:
    """The least a commit leaves free: the existential deposit, or, if more, the declared fees
    (no tip) of the participant's ``samples`` reveals, each at its bound (the envelope of the
    longest extrinsic, :func:`compute_reveal_bound` bytes, :func:`compute_reveal_weight`).
    Without them the update could not be revealed and its bond went to the pool at close: a
    commit of all the participant had left free 0 (balances.compute_reclaim_reserve, the same
    rule for the locks that calls take back)."""
    envelope = balances.compute_longest_length(_EMPTY_REVEAL)
    fee = config.compute_fee(envelope + compute_reveal_bound(spec, info), compute_reveal_weight(spec, info), 0)
    return max(config.existential_deposit, info.samples * fee)


def compute_commit_spend(state: StateAccess, call: CommitUpdate, block: int) -> int:
    """What a commit may move out of its sender's free balance: the round's bond, which it
    holds, and the data set's licence in POL if it names one (0 for an unknown round). A
    pool's count (chain.runtime, ``spend``); two or three reads."""
    info = ROUNDS.get(state, call.round)
    if info is None:
        return 0
    data_license = 0
    if call.dataset is not None:
        data_license = licenses.compute_native_price(state, call.dataset, info.local_steps * info.batch_size, block)
    return info.bond + data_license


def apply_commit_update(ctx: CallContext, call: CommitUpdate) -> None:
    state, who = ctx.state, ctx.sender
    info = get_round(state, call.round)
    if info.status != OPEN or ctx.block.number > info.commit_deadline:
        raise _fail("CommitClosed", f"round {call.round} took commits up to block {info.commit_deadline} (now {ctx.block.number}, {info.status})")
    if info.allowlist and who not in info.allowlist:
        raise _fail("NotAllowed", f"round {call.round} is open to its allowlist only")
    if who in info.participants:
        raise _fail("DuplicateUpdate", f"this account already committed an update to round {call.round}")
    if len(info.participants) >= info.max_updates:
        raise _fail("RoundFull", f"round {call.round} has its {info.max_updates} updates")
    spec = get_spec(state, info)
    if not 1 <= call.row_count <= compute_max_rows(spec) or call.row_count < info.batch_size:
        raise _fail(
            "InvalidRowCount",
            f"row_count must be in {info.batch_size}..{compute_max_rows(spec)} (batch size .. data limit), got {call.row_count}",
        )
    if not 1 <= call.sample_count <= call.row_count:
        raise _fail("InvalidSampleCount", f"sample_count must be in 1..row_count ({call.row_count}), got {call.sample_count}")
    # What the update will count for (compute_counted_samples), not what it declares: the
    # declarations of 16 data-less commits of 2^20 rows filled a 64-update round's total and
    # locked honest participants out (an outside tester's finding, round 7).
    counted = min(call.sample_count, info.local_steps * info.batch_size)
    if info.total_samples + counted > fedavg.MAX_SAMPLES:
        raise _fail("TooManySamples", f"the round's sample counts would exceed {fedavg.MAX_SAMPLES}")
    if len(call.weights) != 4 * spec.param_count:
        raise _fail("WrongShape", f"weights are {len(call.weights)} bytes; the model has {spec.param_count} float32 parameters ({4 * spec.param_count} bytes)")
    weights = np.frombuffer(call.weights, dtype="<f4")
    if not np.isfinite(weights).all():
        raise _fail("NonFiniteWeights", "the weights contain NaN or infinity")
    count = info.segments + 1
    if len(call.losses) != count:
        raise _fail("WrongShape", f"{len(call.losses)} losses; the job has {count} transcript entries")
    if not np.isfinite(np.asarray(call.losses, dtype=np.uint32).view(np.float32)).all():
        raise _fail("NonFiniteWeights", "a loss is NaN or infinity")
    base = models.get_weights(state, info.model, info.base_version)
    first = compute_entry(0, ml_runtime.hash_weights(base), call.losses[0])
    last = compute_entry(count - 1, ml_runtime.hash_weights(weights), call.losses[-1])
    for entry, path, what in ((first, call.first_path, "entry 0 (the base version's weights)"), (last, call.last_path, f"entry {count - 1} (the submitted weights)")):
        try:
            ml_runtime.verify_merkle_proof(call.transcript_root, entry, path, count)
        except ml_runtime.ProofError as exc:
            raise _fail("BadTranscriptProof", f"{what} is not under the transcript root: {exc}") from None
    license_paid, currency = _apply_data_license(ctx, call, spec, info)
    balances.verify_reclaimable(
        PALLET, "InsufficientFreeAfterCommit", balances.get_account(state, who).free, info.bond,
        compute_commit_reserve(ctx.config, spec, info), "the bond", f"the {info.samples} reveals",
    )
    balances.apply_hold(state, PALLET, ESCROW_ACCOUNT, who, info.bond, ctx.config.existential_deposit, "the bond")
    update = UpdateInfo(call.data_root, call.row_count, call.sample_count, last.weights_hash, call.transcript_root, call.losses, ctx.block.number)
    UPDATES.apply_set(state, update, call.round, who)
    UPDATE_WEIGHTS.apply_set(state, call.weights, call.round, who)
    ROUNDS.apply_set(
        state, msgspec.structs.replace(info, participants=(*info.participants, who), total_samples=info.total_samples + counted), call.round,
    )
    if call.dataset is not None:
        ctx.emit(
            "training", "LicensePaid", dataset=call.dataset, provider=datasets.get_dataset(state, call.dataset).provider,
            amount=license_paid, asset=currency,
        )
    ctx.emit(PALLET, "UpdateCommitted", round=call.round, participant=who, samples=call.sample_count, transcript_root=call.transcript_root)


def _apply_data_license(ctx: CallContext, call: CommitUpdate, spec: ml_runtime.ModelSpec, info: RoundInfo) -> tuple[int, int | None]:
    """If the update names a registered data set, check the rows are its rows (root and count)
    and apply its licence to the rows used (local_steps x batch_size) as TRAIN does
    (chain.pallets.licenses.apply_license): the terms in force at this block (who may train,
    expiry, cap, price and currency) are checked, the provider paid, the usage recorded. The
    registered price_per_row alone would ignore every licence its provider set since. Returns
    what was paid and in which asset (None: POL), as TRAIN's LicensePaid event says."""
    if call.dataset is None:
        return 0, None
    data = datasets.get_dataset(ctx.state, call.dataset)
    if not data.complete:
        raise _fail("DatasetMismatch", f"data set {call.dataset} is not completely uploaded")
    wanted = "regression" if spec.family == "linear" else "classification"
    if data.kind != wanted or data.features != spec.d or data.outputs != spec.k:
        raise _fail("DatasetMismatch", f"data set {call.dataset} ({data.kind}, {data.features} features, {data.outputs} outputs) does not fit the model")
    if data.rows_root != call.data_root or data.row_count != call.row_count:
        raise _fail("DatasetMismatch", f"the committed rows are not data set {call.dataset}'s (its root and row count differ)")
    amount, terms = licenses.apply_license(
        ctx.state, call.dataset, data, ctx.sender, info.model, info.local_steps * info.batch_size, ctx.block.number,
        ctx.config.existential_deposit,
    )
    breach = licenses.compute_limit_breach(amount, terms, "the commit", call.max_data_license, call.data_license_asset)
    if breach is not None:  # (the dispatch's rollback undoes the payment)
        raise _fail(*breach)
    return amount, terms.asset


# --- challenge --------------------------------------------------------------------------------


def apply_challenge(ctx: CallContext, call: ChallengeRound) -> None:
    state = ctx.state
    info = get_round(state, call.round)
    if info.status != OPEN:
        raise _fail("AlreadyChallenged", f"round {call.round} is {info.status}")
    if ctx.block.number <= info.commit_deadline:
        raise _fail("TooEarly", f"round {call.round} takes commits until block {info.commit_deadline}")
    if ctx.block.number > info.reveal_deadline:
        raise _fail("TooLate", f"round {call.round}'s reveal deadline {info.reveal_deadline} has passed; close it")
    if len(info.participants) < info.min_updates:
        _apply_fail_round(ctx, call.round, info, f"{len(info.participants)} updates committed, {info.min_updates} needed")
        return
    deadline_hash = system.get_block_hash(state, info.commit_deadline)
    if deadline_hash is None:
        raise _fail(
            "ChallengeExpired", f"block {info.commit_deadline}'s hash is older than the last {system.BLOCK_HASH_COUNT} blocks; close the round"
        )
    seed = compute_challenge_seed(call.round, deadline_hash)
    # The window again, for the updates committed, at the limits in force now and from the
    # block after this one: a referendum may have lowered the limits since the opening sized it
    # (tester19's E4), and the challenge may come later than commit_deadline + 1, which the
    # opening counted on: an author who left it out of that block, in the shortest window the
    # opening admits, made every reveal TooLate and the round's bonds burn (an outside retest's
    # R2, round 14). Pushed out, never in, and no further than MAX_ROUND_BLOCKS from the opening
    # (a window still short then is what the close's excuse covers).
    number = ctx.block.number
    rate = compute_reveals_per_block(ctx.config, get_spec(state, info), info)
    needed = compute_reveal_blocks(len(info.participants) * info.samples, rate)
    deadline = min(max(info.reveal_deadline, number + needed), info.opened_at + MAX_ROUND_BLOCKS)
    revealing = msgspec.structs.replace(
        info, status=REVEALING, challenge_seed=seed, reveal_deadline=deadline, reveal_rate=rate, challenged_at=number
    )
    ROUNDS.apply_set(state, revealing, call.round)
    ctx.emit(PALLET, "RoundChallenged", round=call.round, seed=seed)
    if deadline > info.reveal_deadline:
        ctx.emit(PALLET, "RevealDeadlineExtended", round=call.round, reveal_deadline=deadline, reveals_per_block=rate)


# --- reveal -----------------------------------------------------------------------------------


def _verify_reveal(ctx: CallContext, call: RevealSegment, info: RoundInfo, update: UpdateInfo) -> tuple[ml_runtime.TrainingJob, np.ndarray, ml_runtime.TranscriptEntry, ml_runtime.TranscriptEntry]:
    """Check a reveal's form and proofs (DispatchError on any flaw); the job to re-run."""
    spec = get_spec(ctx.state, info)
    j, count = call.segment, info.segments + 1
    if j not in compute_challenged(info, ctx.sender):
        raise _fail("NotChallenged", f"segment {j} is not one of this update's challenged segments {list(compute_challenged(info, ctx.sender))}")
    if j in update.verified:
        raise _fail("AlreadyRevealed", f"segment {j} was already verified")
    if len(call.weights) != 4 * spec.param_count:
        raise _fail("WrongShape", f"checkpoint is {len(call.weights)} bytes; expected {4 * spec.param_count}")
    checkpoint = np.frombuffer(call.weights, dtype="<f4").astype(np.float32)
    if not np.isfinite(checkpoint).all():
        raise _fail("NonFiniteWeights", "the checkpoint contains NaN or infinity")
    start = compute_entry(j, ml_runtime.hash_weights(checkpoint), update.losses[j])
    end = compute_entry(j + 1, call.end_hash, update.losses[j + 1])
    for entry, path in ((start, call.start_path), (end, call.end_path)):
        try:
            ml_runtime.verify_merkle_proof(update.transcript_root, entry, path, count)
        except ml_runtime.ProofError as exc:
            raise _fail("BadTranscriptProof", f"entry {entry.index}: {exc}") from None
    n = update.row_count
    seed = compute_batch_seed(call.round, ctx.sender)
    wanted = compute_segment_rows(seed, info, j, n)
    dtype = compute_row_dtype(spec)
    if len(call.rows) != len(wanted) * dtype.itemsize or len(call.row_paths) != len(wanted):
        raise _fail(
            "WrongRows",
            f"segment {j} uses {len(wanted)} distinct rows ({len(wanted) * dtype.itemsize} bytes); the reveal has "
            f"{len(call.rows)} bytes and {len(call.row_paths)} paths",
        )
    size = dtype.itemsize
    for pos, (r, path) in enumerate(zip(wanted.tolist(), call.row_paths, strict=True)):
        if not verify_leaf_path(update.data_root, call.rows[pos * size : (pos + 1) * size], path, r, n):
            raise _fail("BadRowProof", f"row {r} (the reveal's row {pos}) is not under the data root")
    rows = np.frombuffer(call.rows, dtype=dtype)
    if not np.isfinite(rows["x"]).all() or (spec.family == "linear" and not np.isfinite(rows["y"]).all()):
        raise _fail("MalformedRows", "a revealed row holds a NaN or infinite value")
    if spec.family != "linear" and (rows["y"] >= spec.k).any():
        raise _fail("MalformedRows", f"a revealed label is outside 0..{spec.k - 1}")
    x = np.zeros((n, spec.d), dtype=np.float32)
    x[wanted] = rows["x"]
    y: np.ndarray
    if spec.family == "linear":
        y = np.zeros((n, spec.k), dtype=np.float32)
        y[wanted] = rows["y"]
    else:
        y = np.zeros(n, dtype=np.int32)
        y[wanted] = rows["y"].astype(np.int32)
    base = models.get_weights(ctx.state, info.model, info.base_version)
    try:
        job = compute_job(info, spec, base, ctx.sender, x, y, call.round)
    except ml_runtime.MLRuntimeError as exc:
        raise _fail("InvalidJob", str(exc)) from None
    return job, checkpoint, start, end


def find_revealing_update(state: StateAccess, who: bytes, call: RevealSegment, number: int) -> tuple[RoundInfo, UpdateInfo]:
    """The round a reveal in block ``number`` names and ``who``'s update in it, while the round
    takes reveals; DispatchError otherwise (a reveal failing here pays BASE_WEIGHT only)."""
    info = get_round(state, call.round)
    if info.status != REVEALING:
        raise _fail("NotRevealing", f"round {call.round} is {info.status}, not revealing")
    if number > info.reveal_deadline:
        raise _fail("TooLate", f"round {call.round} took reveals up to block {info.reveal_deadline}")
    update = UPDATES.get(state, call.round, who)
    if update is None:
        raise _fail("NoUpdate", f"this account committed no update to round {call.round}")
    return info, update


def _verify_undecided(update: UpdateInfo) -> None:
    if update.status != COMMITTED:
        raise _fail("UpdateDecided", f"this update is already {update.status}")


def verify_reveal_admissible(state: StateAccess, who: bytes, call: RevealSegment, number: int, _config: RuntimeConfig) -> None:
    """A pool's check of a reveal (chain.runtime.CallRow.admit): the round takes reveals and the
    sender's update in it awaits them. A round still open here may be challenged by a block
    this node has not imported yet: the reveal is refused as future (no ban), not as invalid.
    Banned, an honest reveal gossiped a moment before the challenge's block arrived stayed
    out of this node's pool for 30 minutes, longer than the reveal window (an outside
    tester's finding, round 9)."""
    info = ROUNDS.get(state, call.round)
    if info is not None and info.status == OPEN:
        raise FutureTransaction(f"round {call.round} is open, not revealing yet: a reveal is taken once a block challenges it")
    _verify_undecided(find_revealing_update(state, who, call, number)[1])


def apply_reveal_segment(ctx: CallContext, call: RevealSegment) -> None:
    state, who = ctx.state, ctx.sender
    ctx.post_info = PostDispatchInfo(actual_weight=BASE_WEIGHT)  # until the update's own n is known
    info, update = find_revealing_update(state, who, call, ctx.block.number)
    spec = get_spec(state, info)
    ctx.post_info = PostDispatchInfo(actual_weight=compute_reveal_weight(spec, info, update.row_count))
    _verify_undecided(update)
    rate = compute_reveals_per_block(ctx.config, spec, info)
    if rate < info.reveal_rate:  # the limits fell during the window: the close reads it (one write, the first time)
        info = msgspec.structs.replace(info, reveal_rate=rate)
        ROUNDS.apply_set(state, info, call.round)
    job, checkpoint, start, end = _verify_reveal(ctx, call, info, update)
    try:
        ml_runtime.verify_segment(job, call.segment, checkpoint, end, start)
    except ml_runtime.MLRuntimeError as exc:
        reason = f"segment {call.segment} does not re-run to the committed entry: {exc}"
        UPDATES.apply_set(state, msgspec.structs.replace(update, status=EXCLUDED, reason=reason), call.round, who)
        ROUNDS.apply_set(state, msgspec.structs.replace(info, forfeited=info.forfeited + info.bond), call.round)
        ctx.emit(PALLET, "UpdateExcluded", round=call.round, participant=who, reason=reason, bond_forfeited=info.bond)
        return
    verified = tuple(sorted((*update.verified, call.segment)))
    done = len(verified) == len(compute_challenged(info, who))
    UPDATES.apply_set(state, msgspec.structs.replace(update, verified=verified, status=ACCEPTED if done else COMMITTED), call.round, who)
    ctx.emit(PALLET, "SegmentVerified", round=call.round, participant=who, segment=call.segment)
    if done:
        ctx.emit(PALLET, "UpdateAccepted", round=call.round, participant=who)


# --- close ------------------------------------------------------------------------------------


def _apply_fail_round(ctx: CallContext, round_id: int, info: RoundInfo, reason: str) -> None:
    """End a round without a new version: bonds back to every update not excluded, the pool
    back to the owner, the forfeited bonds burned. (They went to the owner, who sets the
    round's parameters and so had a motive to make honest participants fail: an outside
    tester's finding, round 7.)"""
    for who in info.participants:
        update = UPDATES.get(ctx.state, round_id, who)
        if update is not None and update.status != EXCLUDED:
            balances.apply_release(ctx.state, PALLET, ESCROW_ACCOUNT, who, info.bond)
    balances.apply_release(ctx.state, PALLET, ESCROW_ACCOUNT, info.owner, info.reward_pool)
    balances.apply_burn_held(ctx.state, PALLET, ESCROW_ACCOUNT, info.forfeited)
    ROUNDS.apply_set(ctx.state, msgspec.structs.replace(info, status=FAILED), round_id)
    ctx.emit(PALLET, "RoundFailed", round=round_id, reason=reason, bonds_burned=info.forfeited)


def apply_close_round(ctx: CallContext, call: CloseRound) -> None:
    state = ctx.state
    info = get_round(state, call.round)
    if info.status in (CLOSED, FAILED):
        raise _fail("RoundEnded", f"round {call.round} is already {info.status}")
    updates = {who: UPDATES.get(state, call.round, who) for who in info.participants}
    decided = info.status == REVEALING and all(u is not None and u.status != COMMITTED for u in updates.values())
    if ctx.block.number <= info.reveal_deadline and not decided:
        raise _fail("TooEarly", f"round {call.round} takes reveals until block {info.reveal_deadline}")
    if info.status == OPEN:  # never challenged: nobody could reveal
        _apply_fail_round(ctx, call.round, info, "the round was never challenged")
        return
    if models.is_version_forged(state, info.model, info.base_version):  # proven since the round opened
        _apply_fail_round(ctx, call.round, info, f"its base version {info.base_version} was proven forged")
        return
    forfeited = info.forfeited
    held = compute_window_capacity(info)
    reveals = len(info.participants) * info.samples
    excused: list[bytes] = []
    for who, update in updates.items():
        if update is not None and update.status == COMMITTED:
            reason = f"revealed {len(update.verified)} of {len(compute_challenged(info, who))} challenged segments by the deadline"
            if held < reveals:  # the limits fell: the window could not take every reveal; the bond goes back
                reason += (
                    f"; at {info.reveal_rate} a block, the fewest the block limits allowed since the challenge, blocks "
                    f"{info.challenged_at + 1}..{info.reveal_deadline} could hold {held} of the round's {reveals} reveals"
                )
                UPDATES.apply_set(state, msgspec.structs.replace(update, status=EXCUSED, reason=reason), call.round, who)
                excused.append(who)
                ctx.emit(PALLET, "UpdateExcused", round=call.round, participant=who, reason=reason, bond_returned=info.bond)
                continue
            UPDATES.apply_set(state, msgspec.structs.replace(update, status=EXCLUDED, reason=reason), call.round, who)
            forfeited += info.bond
            ctx.emit(PALLET, "UpdateExcluded", round=call.round, participant=who, reason=reason, bond_forfeited=info.bond)
    info = msgspec.structs.replace(info, forfeited=forfeited)
    accepted = sorted(who for who, u in updates.items() if u is not None and u.status == ACCEPTED)
    if len(accepted) < info.min_updates:  # (a failure returns the excused bonds with the accepted ones)
        _apply_fail_round(ctx, call.round, info, f"{len(accepted)} updates accepted, {info.min_updates} needed")
        return
    accepted_updates = [updates[who] for who in accepted]
    weights = [np.frombuffer(UPDATE_WEIGHTS.get(state, call.round, who) or b"", dtype="<f4").astype(np.float32) for who in accepted]
    counts = [compute_counted_samples(info, u) for u in accepted_updates if u is not None]
    try:
        aggregate = fedavg.federated_average(weights, counts)
    except ml_runtime.MLRuntimeError as exc:
        _apply_fail_round(ctx, call.round, info, f"the federated average failed: {exc}")
        return
    version = _apply_version(state, info, aggregate, ctx.block.number)
    entries = tuple(
        LineageEntry(who, u.data_root, u.row_count, u.transcript_root, count)
        for who, u, count in zip(accepted, accepted_updates, counts, strict=True) if u is not None
    )
    LINEAGE.apply_set(state, FederatedLineage(call.round, entries), info.model, version)
    pool, total = info.reward_pool + info.forfeited, sum(counts)
    paid = 0
    for who, u, count in zip(accepted, accepted_updates, counts, strict=True):
        assert u is not None
        reward = pool * count // total
        paid += reward
        balances.apply_release(state, PALLET, ESCROW_ACCOUNT, who, info.bond + reward)
        UPDATES.apply_set(state, msgspec.structs.replace(u, reward=reward), call.round, who)
        ctx.emit(PALLET, "RewardPaid", round=call.round, participant=who, amount=reward)
    balances.apply_release(state, PALLET, ESCROW_ACCOUNT, info.owner, pool - paid)
    for who in excused:
        balances.apply_release(state, PALLET, ESCROW_ACCOUNT, who, info.bond)
    ROUNDS.apply_set(state, msgspec.structs.replace(info, status=CLOSED, new_version=version), call.round)
    ctx.emit(
        PALLET, "RoundClosed", round=call.round, model=info.model, version=version, accepted=len(accepted),
        excluded=len(info.participants) - len(accepted) - len(excused), excused=len(excused),
        weights_hash=ml_runtime.hash_weights(aggregate),
    )


def compute_window_capacity(info: RoundInfo) -> int:
    """The reveals a challenged round's window held at the fewest reveals a block the limits
    allowed since the challenge (RoundInfo.reveal_rate): blocks challenged_at + 1 ..
    reveal_deadline, as the challenge counts them."""
    return max(0, info.reveal_deadline - info.challenged_at) * info.reveal_rate


def compute_counted_samples(info: RoundInfo, update: UpdateInfo) -> int:
    """What an accepted update weighs in the aggregate and the pool's split: its declared
    sample count, but at most the rows its job draws (local_steps x batch_size), whatever the
    data set's size. The count is the participant's word and its rows are checked only where
    the challenged segments draw them, so duplicate rows, or rows no step draws, counted in
    full: one participant tiled 64 rows to 64,527 and took 98.85% of the pool and of the
    aggregate (an outside tester's finding, round 5). What a verified update proves is the
    computation over committed rows, not how many distinct rows, nor how good: FedAvg has no
    defence against a participant with bad rows, and an open round admits anyone (an
    allowlist does not)."""
    return min(update.sample_count, info.local_steps * info.batch_size)


def _apply_version(state: StateAccess, info: RoundInfo, weights: np.ndarray, block: int) -> int:
    """Store the aggregate as the model's next version; its parent is the round's base version."""
    return models.apply_new_version(state, info.model, info.base_version, weights, info.owner, block, None)
