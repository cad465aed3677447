"""The runtime's constants: fees, limits, deposits.

The chain spec names them (``runtimeConfig``) and genesis writes them into state under the
well-known key :data:`RUNTIME_CONFIG_KEY`, so the genesis hash covers them: two specs with
different fees are two chains. A node reads them from state when it opens its database, never
from the spec it was started with.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

from chain.calls import PPM
from chain.codec import MAX_BALANCE, decode, encode
from chain.errors import CodecError

SPEC_NAME = "polchain"
# The rules this build's runtime implements (Substrate's ``RuntimeVersion.spec_version``): a
# change to what any block computes is a new version. Genesis stores it (RUNTIME_VERSION_KEY),
# so the genesis hash covers it, as a Substrate genesis covers ``:code``: a node of another
# version refuses the database and its peers refuse the node at the handshake (another
# genesis), instead of forking on the first block the rules disagree on.
# 1: the chain up to 2026-11-28. 2: proposal deposits in governance and democracy, INFER
# outputs counted against the block, error texts cut at 512 bytes, the block's transcript
# bound and the transcript fee, the slot duration in the runtime config. 3: a header's
# digest bounded (8 logs of at most 256 bytes), the seal signing the genesis hash
# (chain.header.compute_seal_message), a validator's unbonding held for the offence report
# window (chain.pallets.staking.compute_unlock_at), a block counting what its calls used, not
# what they declared (chain.runtime._count_used), price limits on Train and Infer, a
# training step's weight counting the drawing of its batch and its fixed part, and each
# segment's (ml_runtime.train_step_cost, SEGMENT_UNITS). 4: one slash per removal and a
# punished validator disabled at once (chain.pallets.pol.is_punished, consensus.aura's
# "disabled_author"); a bounty claim checking the claimed version's lineage since the posting
# (chain.pallets.bounties.compute_lineage); a training step's and a segment's weight counting
# their parameters (ml_runtime.STEP_PARAM_UNITS, SEGMENT_PARAM_UNITS), short loops counted at
# ml_runtime.LANES and an exp at 64 units; lr * l2 below 1 (training.verify_decay); a referendum unable to
# price out its own undoing (chain.pallets.democracy.verify_recoverable) nor raise the block weight past a third of a slot
# (chain.pallets.democracy.compute_weight_ceiling), and an extrinsic over MAX_EXTRINSIC_SIZE refused in a block as by
# the pool (chain.runtime); a bounty claim held for chain.pallets.bounties.ESCROW_BLOCKS and voided by a fraud proof of
# its lineage, which pol proves for a punished author too; a model's quorum at most half; at most 64 TRAIN calls a block
# (chain.block.MAX_TRAIN_CALLS); a TRAIN from a version proven forged refused (training.ForgedVersion); a model's
# threshold at most two thirds; a federated round refused when its update or reveal fields could not carry it (all
# added 2026-11-30, before any node ran version 4). 5 (outside testers' round 7): a fraud report, a federated
# reveal and a round's close declaring at most a block's weight (chain.runtime.SETTLING_CALLS) and a fraud proof whose
# segment is heavier than its block's limit refused ("too_heavy"); a federated round refused on a forged base or a
# reveal window too short for its reveals, its sample total counting what each update counts for, and a failed
# round's forfeited bonds burned; a referendum unable to shorten the voting period below 1,800 blocks, to mint more
# than a tenth of the issuance a year, or to raise the reporter's share past half; a model's threshold at least half
# and two open proposals a proposer; a data set at most 1 GiB and its read weighed at 4 units a byte; and from round
# 8 (before any node ran version 5: its CI run had failed): a federated challenge and a bounty claim among the
# settling calls, and a start- or end-fault report declaring no segment re-run (chain.pallets.training.compute_check_weight).
# 6 (outside testers' round 8, S1): a TRAIN call checks its data set's schema and size and its licence's terms, and pays
# both licences, before it reads the rows and is charged for them (chain.pallets.training.verify_job_inputs).
# 7 (outside testers' round 12): a TRAIN naming no version trains the model's latest version made before its block,
# not one an earlier call of the block made (chain.pallets.models.compute_latest_before; tester17's H1); the extrinsics
# root binds the extrinsics' count (chain.block.compute_extrinsics_root; H3); a segment diverges where the running sum
# of its losses stops being finite (ml_runtime.kernels; H2); a fault other than a start fault is proven without the
# version's weights (chain.fraud; M1); every extrinsic weighs at least EXTRINSIC_BASE_WEIGHT (a remark's minimum;
# tester16's W3); register_model pays byte_fee on the weights it stores (DispatchInfo.stored_bytes; W1); a referendum's
# ceiling on max_block_weight is a third of a slot at the slowest call's unit (democracy.SLOWEST_NS_PER_UNIT; W2); an
# INFER's weight counts reading the version's weights (W4); a TRAIN of a model registered in its own block is refused
# (training.verify_job_inputs, "ModelTooNew"; the retest's A1), all before any node ran version 7.
# 8: a data set records the block its upload completed in, and a TRAIN on it in that block is refused
# (chain.pallets.datasets.DatasetInfo.completed_in; training.verify_job_inputs, "DatasetTooNew"): no
# parent state holds the complete set, so a fraud proof of a job on it could be judged by no node there;
# an append's weight counts the bytes a restart deletes (datasets.CHUNK_DELETE_BYTE_WEIGHT), the merges
# a row may carry (ROW_HASH_WEIGHT per bit of the row count) and a base of 250,000 (APPEND_BASE_WEIGHT);
# passed proposals and referenda are enacted from a queue, 16 a block, the rest carried over, never failed for
# want of room (chain.pallets.agenda.Queue; an outside tester's E2, round 13); a federated commit naming a data set
# says the most it pays its licence (CommitUpdate.max_data_license; E3); an era is paid out whatever the reward
# config, so the era in which rewards are turned off is not stranded (chain.pallets.rewards.on_initialize; E1).
# 9: a data licence limit names its currency (Train.data_license_asset, CommitUpdate.data_license_asset: None
# for POL); terms in another currency fail the call with a limit (training/federated.LicenseCurrencyMismatch),
# as a limit in POL was otherwise paid in whatever asset the terms had moved to (an outside tester's note, round 13);
# a TRAIN naming a version made in its own block is refused (training.VersionTooNew; an outside tester's P1, round
# 14: a block that lost a fork race was judged against the winner's version of that number, and its honest author
# slashed), and with it the bounty check it made unreachable (LineageStartsInPostingBlock); a federated round's
# reveal window follows the block limits a referendum lowers (tester19's E4): the challenge moves reveal_deadline out
# to hold the committed updates' reveals at the limits then in force, and a close returns (status "excused") the bond
# of an update left unrevealed by a window that the fewest reveals a block seen since the challenge could not fill
# (chain.pallets.federated.RoundInfo.reveal_rate, compute_window_capacity), and from the challenge's own block
# (RoundInfo.challenged_at; the retest's R2); max_segments is at most MAX_SEGMENTS_PER_SAMPLE (16) x pol_samples,
# 64 by default where it was 1,024 (a forged segment escaped four validators 98% of the time: P2, and the retest's R1).
# tests/chain/test_vectors.py pins each version's golden genesis and block hashes: a change to either is a new version.
SPEC_VERSION = 9
TRANSACTION_VERSION = 1


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Fee = base_fee + byte_fee * length + weight_fee * weight + tip (Substrate's formula).

    ``length`` is every byte a call adds to its block: its own encoding and, for a TRAIN
    call, its training result, counted at an upper bound computed from the call's arguments
    (``chain.proofs.compute_result_length``) so that the fee is known before dispatch, and
    the bytes the call makes nodes store beside the block (chain.runtime.DispatchInfo: a
    TRAIN's checkpoints, a registered model's version 0). Weights
    are in work units: ml_runtime's cost model for training, a fixed amount for the other
    calls. The fee on the declared length and weight is withdrawn before dispatch; afterwards
    the weight the call did not use and the result bytes it did not carry are refunded
    (Substrate's ``PostDispatchInfo.actual_weight``). The defaults make a transfer cost about
    0.01 unit of the token.

    ``max_block_length`` bounds a block's whole encoding (header, extrinsics and training
    results): a call whose own bytes cannot fit an empty block is invalid, whatever its weight.
    """

    existential_deposit: int = 1_000_000  # 0.001 token at 9 decimals
    base_fee: int = 1_000_000
    byte_fee: int = 1_000
    weight_fee: int = 1
    max_block_weight: int = 2_000_000_000
    max_block_length: int = 5 * 1024 * 1024
    max_train_steps: int = 100_000
    max_train_batch: int = 4096
    max_segments: int = 64  # S of a TRAIN; at most MAX_SEGMENTS_PER_SAMPLE x pol_samples
    max_model_params: int = 1 << 18
    min_validator_bond: int = 1_000_000_000
    # Proof of learning (docs/architecture.md §2). A block carries each TRAIN call's result
    # (transcript root, losses, new weights); the intermediate checkpoints stay with the
    # author, who must store and serve them: ``max_transcript_bytes`` bounds what one block's
    # calls can make it keep together, (S + 1) * 4 * param_count each, and each byte is paid
    # for as a block byte (byte_fee; chain.runtime.DispatchInfo).
    pol_samples: int = 4  # m: segments each validator re-runs per job
    challenge_blocks: int = 4  # a block is voted for only with this many descendants
    max_transcript_bytes: int = 64 << 20
    slash_fraction_ppm: int = 500_000  # share of the offender's staked balance slashed per offence
    reporter_share_ppm: int = 100_000  # share of the slashed amount paid to the reporter; rest burned
    era_length: int = 16  # blocks per era; validator-set changes apply at era starts
    gov_voting_blocks: int = 20  # a shared model's first voting period (its holders may change it)
    gov_enactment_blocks: int = 5  # and its first enactment delay
    # Rewards for compute (chain.pallets.rewards): each block mints block_reward, halved every
    # reward_halving_blocks (0: never); voter_reward_share_ppm of it goes to the voters' pot,
    # the rest to the authors' pot; validator_fee_share_ppm of every training fee goes to the
    # voters' pot. At each era start the authors' pot is paid by blocks authored, the voters'
    # pot by blocks covered by the finality votes noted on chain (rewards.note_votes).
    block_reward: int = 0
    reward_halving_blocks: int = 0
    validator_fee_share_ppm: int = 0
    voter_reward_share_ppm: int = 0
    # Aura's slot duration (consensus.aura: a slot is the clock in ms divided by it). The
    # chain's, not each node's: Substrate's pallet-aura ``SlotDuration`` (pallet-timestamp's
    # ``MinimumPeriod * 2``), which the node asks the runtime for (``AuraApi::slot_duration``),
    # so every node of a chain agrees on it by construction. Fixed at genesis
    # (FIXED, below): a new duration would move every slot number.
    slot_duration_ms: int = 6000

    def compute_fee(self, length: int, weight: int, tip: int) -> int:
        """Exact, not saturated: with a valid config only a tip can take it past 2^63-1, and
        chain.runtime refuses such an extrinsic (payment) before the fee is used or shown."""
        return self.base_fee + self.byte_fee * length + self.weight_fee * weight + tip

    def compute_problems(self) -> list[str]:
        """What makes this config unusable, one message per broken rule, each starting with the
        field(s) it names; empty if none. The one table of bounds: the spec loader
        (genesis.spec.check_runtime_config) and a referendum (chain.pallets.democracy, when
        proposed and again when enacted) both apply it.

        - every constant fits a balance (2^63-1), and the largest fee a block can charge,
          base + byte x (max_block_length + max_transcript_bytes + 4 x max_model_params, a registration's stored
          weights) + weight x max_block_weight, does too (fees never overflow);
        - a block has room for the fixed part of every call's weight (register_model's base,
          1,000,000 units, the largest) and for 64 KiB of extrinsics;
        - training can run at all: at least one step, one row per batch, one segment, one parameter,
          and a transcript of one segment of a one-parameter model (2 checkpoints, 8 bytes);
        - proof of learning works: a validator re-runs at least one segment per job
          (pol_samples), and at least one in MAX_SEGMENTS_PER_SAMPLE of a job's segments
          (max_segments <= 16 x pol_samples), an era is at least one block, and the slash, reporter, validator fee
          and voter reward shares are parts per million, at most 1,000,000 (all of it);
        - a model's vote lasts at least one block, and its voting and enactment periods are at
          most 100,000 blocks (chain.pallets.governance.MAX_PERIOD: what a shared model's
          holders may set; referenda on the config use the same periods);
        - the challenge window (consensus.finality) ends inside the window of block hashes the
          state keeps (chain.pallets.system.BLOCK_HASH_COUNT): at most 4,095 blocks, so every
          vote's target can be noted (chain.pallets.rewards) and a fraud in a block not yet
          final can be reported (chain.pallets.pol); a larger one left voters unpaid, and one
          past the chain's length stopped finality for good;
        - a block's transcripts are at most 1 GiB together: its author holds every checkpoint
          of its TRAIN calls in memory and writes them in the block's batch, so a larger bound
          lets one block exhaust every author's memory;
        - a slot lasts 1 ms to 1 hour: 0 divides the clock by zero; past an hour a block a day
          or less is no chain to run (the bound ``polchain devnet --block-time`` had).
        """
        problems = [f"{f.name} must be at most 2^63-1" for f in fields(self) if getattr(self, f.name) > MAX_BALANCE]
        problems += [
            f"{name} must be at least {low:,} (got {getattr(self, name)}): the chain could not include a transaction"
            for name, low in MINIMUMS.items()
            if getattr(self, name) < low
        ]
        problems += [
            f"{name} must be at most {PPM:,} (parts per million), got {getattr(self, name):,}"
            for name in ("slash_fraction_ppm", "reporter_share_ppm", "validator_fee_share_ppm", "voter_reward_share_ppm")
            if getattr(self, name) > PPM
        ]
        problems += [
            f"{name} must be at most {MAX_GOV_PERIOD:,} blocks, got {getattr(self, name):,}"
            for name in ("gov_voting_blocks", "gov_enactment_blocks")
            if getattr(self, name) > MAX_GOV_PERIOD
        ]
        if self.max_segments > MAX_SEGMENTS:
            problems.append(
                f"max_segments must be at most {MAX_SEGMENTS:,} (got {self.max_segments:,}): a block's result carries "
                "one loss a segment, and the codec reads at most that many"
            )
        if self.max_segments > MAX_SEGMENTS_PER_SAMPLE * self.pol_samples:
            problems.append(
                f"max_segments must be at most {MAX_SEGMENTS_PER_SAMPLE} x pol_samples = {MAX_SEGMENTS_PER_SAMPLE * self.pol_samples:,} "
                f"(got {self.max_segments:,}): a forged segment escapes each validator with probability 1 - m/S"
            )
        if self.max_transcript_bytes > MAX_TRANSCRIPT_BYTES:
            problems.append(
                f"max_transcript_bytes must be at most {MAX_TRANSCRIPT_BYTES:,}, got {self.max_transcript_bytes:,}: "
                "a block's author holds its TRAIN calls' whole transcripts in memory and writes them in the block's one batch"
            )
        if self.max_model_params > MAX_MODEL_PARAMS:
            # (Governance could not raise it, but a spec could set 2^23: an outside tester's finding.)
            problems.append(
                f"max_model_params must be at most {MAX_MODEL_PARAMS:,} (got {self.max_model_params:,}): a fraud proof "
                "carries one checkpoint of the model, and its report must fit a 2 MiB extrinsic"
            )
        if self.max_block_length > MAX_BLOCK_LENGTH:
            # (Only governance checked this, so a spec could start a chain whose full blocks no
            # peer could receive: a node stopped for good below such a block, banning its
            # author for a bad announcement: an outside tester's finding.)
            problems.append(
                f"max_block_length must be at most {MAX_BLOCK_LENGTH:,} (got {self.max_block_length:,}): "
                "a block and its training proofs must fit a 16 MiB network message"
            )
        if self.challenge_blocks > MAX_CHALLENGE_BLOCKS:
            problems.append(
                f"challenge_blocks must be at most {MAX_CHALLENGE_BLOCKS:,} blocks, got {self.challenge_blocks:,}: "
                "a finality vote's target must be a block the state can still name (system.BLOCK_HASH_COUNT), "
                "to be noted for its voter's reward and to have its fraud reported on chain until it is final"
            )
        if not MIN_SLOT_DURATION_MS <= self.slot_duration_ms <= MAX_SLOT_DURATION_MS:
            problems.append(
                f"slot_duration_ms must be {MIN_SLOT_DURATION_MS} to {MAX_SLOT_DURATION_MS:,} ms (1 hour), "
                f"got {self.slot_duration_ms:,}: Aura's slot is the clock in milliseconds divided by it"
            )
        # (the stored weights of a registration, 4 bytes a parameter, are paid as bytes too:
        # chain.runtime.DispatchInfo.stored_bytes)
        stored = self.max_block_length + self.max_transcript_bytes + 4 * self.max_model_params
        if self.base_fee + self.byte_fee * stored + self.weight_fee * self.max_block_weight > MAX_BALANCE:
            problems.append(
                "base_fee/byte_fee/weight_fee: the fee of a full block (base_fee + byte_fee x (max_block_length + "
                "max_transcript_bytes + 4 x max_model_params) + weight_fee x max_block_weight) exceeds 2^63-1"
            )
        return problems

    def compute_differences(self, other: RuntimeConfig) -> list[str]:
        """``"name self (stored) vs other (chain spec)"`` for each field that differs."""
        return [
            f"{f.name} {getattr(self, f.name)} (stored) vs {getattr(other, f.name)} (chain spec)"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


MIN_BLOCK_WEIGHT = 1_000_000  # models.REGISTER_BASE_WEIGHT, the largest fixed part of a call's weight
MIN_BLOCK_LENGTH = 64 * 1024
MAX_GOV_PERIOD = 100_000  # chain.pallets.governance.MAX_PERIOD
MAX_CHALLENGE_BLOCKS = 4096 - 1  # chain.pallets.system.BLOCK_HASH_COUNT - 1
MAX_TRANSCRIPT_BYTES = 1 << 30
# A block and its training results cross the network in one message of at most 16 MiB
# (node.network.messages); 8 MiB leaves room for the rest of a block response.
MAX_BLOCK_LENGTH = 8 * 1024 * 1024
# A fraud proof carries one checkpoint, 4 bytes a parameter, and pol.report_fraud carries the
# proof in an extrinsic of at most 2 MiB (chain.extrinsic.MAX_EXTRINSIC_SIZE): the report of a
# model of 500,000 parameters, with the longest TRAIN call, is at most 2,007,257 bytes
# (tests/chain/test_democracy.py computes it); of 2^19, 2,104,409, too large. Above it a
# forged segment could be refused by every validator but never proven on chain.
MAX_MODEL_PARAMS = 500_000
# S / m at most: a forged segment escapes each validator's random sample with probability
# 1 - m/S, and one forged segment fixes every weight after it; the largest-update re-run
# (consensus.pol) does not bound it, since a forger keeps its steps below the largest honest one.
# At 1,024 segments with m = 4 one forged segment escaped four validators 98% of the time and
# could set a new version to any weights (an outside tester's P2 and its retest's R1, round 14);
# at 16, 77% at four validators, 52% at ten, 0.16% at a hundred (README's table).
MAX_SEGMENTS_PER_SAMPLE = 16
# The most segments a TRAIN may have, whatever pol_samples: a block's result carries S + 1
# losses, and the codec bounds that list (chain.proofs.TrainingResult) so that a peer's
# 16 MiB of one-byte losses is refused as it is read, not decoded into 16.7 million items
# first (an outside tester's N1, round 15). 4,096 = 16 x 256 samples, far past any config here.
MAX_SEGMENTS = 4096
MIN_SLOT_DURATION_MS = 1
MAX_SLOT_DURATION_MS = 3_600_000
MINIMUMS = {
    "max_block_weight": MIN_BLOCK_WEIGHT, "max_block_length": MIN_BLOCK_LENGTH, "max_train_steps": 1,
    "max_train_batch": 1, "max_segments": 1, "max_model_params": 1,
    "max_transcript_bytes": 8, "pol_samples": 1, "era_length": 1, "gov_voting_blocks": 1,
}

# A well-known key: unhashed and ':'-prefixed, like Substrate's ``:code``, so no pallet's
# hashed keys (16-byte twox/blake2 prefixes) can collide with it.
RUNTIME_CONFIG_KEY = b":runtime_config"
RUNTIME_VERSION_KEY = b":runtime_version"  # (spec name, spec version), written at genesis


def encode_runtime_version() -> bytes:
    """What genesis stores under RUNTIME_VERSION_KEY: this build's (SPEC_NAME, SPEC_VERSION)."""
    return encode((SPEC_NAME, SPEC_VERSION))


def describe_runtime_version(stored: bytes | None) -> str:
    """``name/version`` of a stored runtime version, for a refusal that names it."""
    if stored is None:
        return f"{SPEC_NAME}/1 (it stores no runtime version: written before spec_version 2)"
    try:
        name, version = decode(stored, tuple[str, int])
    except CodecError:
        return f"0x{stored[:64].hex()} (not a runtime version)"
    return f"{name}/{version}"


def encode_runtime_config(config: RuntimeConfig) -> bytes:
    """The canonical bytes stored at genesis: the fields in declaration order, as an array.

    Adding, removing or reordering a field changes these bytes, and so the genesis hash: it is
    a consensus change (a new SPEC_VERSION).
    """
    return encode(astuple(config))


def decode_runtime_config(data: bytes) -> RuntimeConfig:
    values = decode(data, tuple[int, ...])
    names = [f.name for f in fields(RuntimeConfig)]
    if len(values) != len(names) or any(v < 0 for v in values):
        raise CodecError(f"RuntimeConfig: expected {len(names)} integers >= 0 ({', '.join(names)}), got {values!r}")
    return RuntimeConfig(*values)


# The fields no referendum may change (chain.pallets.democracy: FixedField), and why; here, with
# the fields, so that the CLI can list and refuse them without importing the runtime.
FIXED = {
    "era_length": (
        "eras are block number % era_length and era indices number // era_length: a new length "
        "would renumber past eras and move the next era start, under staking's unbonding and "
        "rewards' era pots"
    ),
    "slot_duration_ms": (
        "slots are the clock divided by the slot duration (consensus.aura): a new duration would "
        "move every slot number, putting the next block's slot behind its parent's or hours "
        "ahead of it, and handing the slots to come to other validators"
    ),
    "max_model_params": (
        "registered models and the wire bounds sized for them depend on it: a cut leaves models "
        "above the bound, a raise can make a fraud proof too large for a pol.report_fraud "
        "extrinsic (2 MiB) or the network (8 MiB), so a faulty block could not be proven"
    ),
}
