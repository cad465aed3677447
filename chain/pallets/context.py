"""What a call handler sees: the overlay, the sender, the block, the runtime's configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chain.codec import Wire

if TYPE_CHECKING:
    import ml_runtime
    from chain.config import RuntimeConfig
    from chain.pallets.items import StateAccess
    from chain.proofs import Opening, TrainingClaim, TrainingResult


# Bytes arguments are kept as 0x-hex strings: msgspec cannot decode a union of str and bytes.
EventArg = int | str | bool | float | None


class Event(Wire, frozen=True, gc=False):
    """A runtime event: pallet, past-tense name, named arguments.

    Not tracked by the cyclic garbage collector (``gc=False``): a block of transfers makes
    thousands, which the collection after each block would walk, and an event holds only
    strings and scalars in tuples, so it can never be part of a reference cycle.
    """

    pallet: str
    name: str
    args: tuple[tuple[str, EventArg], ...] = ()


@dataclass(frozen=True, slots=True)
class PostDispatchInfo:
    """What a call used, reported by its handler (Substrate's ``PostDispatchInfo``).

    None means what the call declared before dispatch (its weight, its result, transcript and
    stored bytes). A handler that stops before its heavy work lowers them; the executive charges
    min(declared, actual) and refunds the rest, also when the call fails.
    """

    actual_weight: int | None = None
    actual_result_length: int | None = None
    actual_transcript_bytes: int | None = None
    actual_stored_bytes: int | None = None


AS_DECLARED = PostDispatchInfo()


@dataclass(slots=True)
class CallContext:
    """The mutable context of one extrinsic's dispatch (events accumulate here, not in state).

    ``fee`` is the fee withdrawn before dispatch (on the declared weight and length);
    ``post_info`` is what the handler reports it used; ``genesis_hash`` names the chain, for
    calls that check signatures over chain-bound messages (finality votes).
    """

    state: StateAccess
    sender: bytes
    extrinsic_index: int
    extrinsic_hash: bytes
    fee: int
    block: BlockInfo
    config: RuntimeConfig
    events: list[Event] = field(default_factory=list)
    post_info: PostDispatchInfo = AS_DECLARED
    genesis_hash: bytes = b""

    def emit(self, pallet: str, name: str, **args: Any) -> None:
        self.events.append(
            Event(pallet, name, tuple((k, "0x" + v.hex() if isinstance(v, bytes) else v) for k, v in args.items()))
        )


@dataclass(slots=True)
class BlockInfo:
    """The block being executed, and how its training is handled.

    Authoring: the training pallet runs each job with ``trainer`` (ml_runtime.run_job; a
    byzantine node swaps in its own) and puts its result in ``results`` and every opening of
    its transcript in ``openings`` (stored with the block). Importing: ``results`` holds the
    block body's results by extrinsic index; the training pallet checks each cheaply, takes
    the new weights from it, and records a claim in ``claims`` for the chain's verifier,
    which runs after the block's roots match its header.

    ``result_length``: the result lengths its extrinsics used so far (chain.runtime
    .DispatchInfo, what each declared less what it did not use), to which each next one's
    declared length must fit the block's length, on import as when built;
    ``transcript_bytes``: the same for the checkpoints its TRAIN calls made, which together
    must fit ``max_transcript_bytes``.
    """

    number: int
    parent_hash: bytes
    author: bytes
    authoring: bool
    trainer: Callable[[ml_runtime.TrainingJob], ml_runtime.JobResult]
    results: dict[int, TrainingResult] = field(default_factory=dict)
    claims: list[TrainingClaim] = field(default_factory=list)
    openings: dict[int, tuple[Opening, ...]] = field(default_factory=dict)
    training_steps: int = 0
    work_units: int = 0
    result_length: int = 0
    transcript_bytes: int = 0
    train_calls: int = 0  # TRAIN extrinsics applied so far (chain.block.MAX_TRAIN_CALLS)
