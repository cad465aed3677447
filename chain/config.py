"""The runtime's constants: fees, limits, deposits.

The chain spec names them (``runtimeConfig``) and genesis writes them into state under the
well-known key :data:`RUNTIME_CONFIG_KEY`, so the genesis hash covers them: two specs with
different fees are two chains. A node reads them from state when it opens its database, never
from the spec it was started with.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

from chain.codec import decode, encode
from chain.errors import CodecError

SPEC_NAME = "polchain"
SPEC_VERSION = 1
TRANSACTION_VERSION = 1


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Fee = base_fee + byte_fee * length + weight_fee * weight + tip (Substrate's formula).

    ``length`` is every byte a call adds to its block: its own encoding and, for a TRAIN
    call, its training result, counted at an upper bound computed from the call's arguments
    (``chain.proofs.compute_result_length``) so that the fee is known before dispatch. Weights
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
    max_segments: int = 1024
    max_model_params: int = 1 << 18
    min_validator_bond: int = 1_000_000_000
    # Proof of learning (docs/architecture.md §2). A block carries each TRAIN call's result
    # (transcript root, losses, new weights); the intermediate checkpoints stay with the
    # author, who must store and serve them: ``max_transcript_bytes`` bounds what one call can
    # make it keep, (S + 1) * 4 * param_count.
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

    def compute_fee(self, length: int, weight: int, tip: int) -> int:
        return self.base_fee + self.byte_fee * length + self.weight_fee * weight + tip

    def compute_differences(self, other: RuntimeConfig) -> list[str]:
        """``"name self (stored) vs other (chain spec)"`` for each field that differs."""
        return [
            f"{f.name} {getattr(self, f.name)} (stored) vs {getattr(other, f.name)} (chain spec)"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


# A well-known key: unhashed and ':'-prefixed, like Substrate's ``:code``, so no pallet's
# hashed keys (16-byte twox/blake2 prefixes) can collide with it.
RUNTIME_CONFIG_KEY = b":runtime_config"

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
