"""The runtime's constants: fees, limits, deposits. Part of the chain spec's genesis config."""

from __future__ import annotations

from dataclasses import dataclass

SPEC_NAME = "polchain"
SPEC_VERSION = 1
TRANSACTION_VERSION = 1


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Fee = base_fee + byte_fee * length + weight_fee * weight + tip (Substrate's formula).

    Weights are in work units: ml_runtime's cost model for training, a fixed amount for the
    other calls. The defaults make a transfer cost about 0.01 unit of the token.
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

    def compute_fee(self, length: int, weight: int, tip: int) -> int:
        return self.base_fee + self.byte_fee * length + self.weight_fee * weight + tip
