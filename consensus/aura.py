"""Aura: who may author in which slot, and the checks on an incoming block's header.

Time is cut into slots of ``slot_ms``; slot ``s`` belongs to validator ``s mod n`` of the set
in the parent block's state (Substrate's ``sc-consensus-aura``: round robin over the
authorities, ``slot_author``). A block is refused when

- its author is not a validator, or not the owner of its slot ("not_validator", "wrong_author");
- its author is disabled ("disabled_author"): queued in the parent state to leave the set for
  a proven offence (chain.pallets.staking.is_disabled), so its slots stay empty until the era
  start removes it. Substrate's Aura refuses a disabled author's blocks the same way
  (``pallet-aura``'s ``DisabledValidators``). Without it, an author slashed for a forged or
  equivocating block went on sealing them until the era ended, and with one slash per
  removal (chain.pallets.pol) it would do so for free;
- its seal is not its author's ed25519 signature of the pre-seal hash ("bad_seal");
- its slot is not after its parent's ("slot_not_increasing"): slots only move forward on a
  branch, so one author cannot fill a branch by reusing a slot;
- its slot is more than ``max_future_slots`` ahead of the local clock's slot ("future_slot"):
  Substrate defers such blocks until their slot comes; polchain refuses them and the peer
  may send again later.

A block whose author already sealed another block in the same slot is an equivocation: both
headers are kept in the chain's EVIDENCE column (key ``aura/`` + slot + author) for slashing,
and the block is still imported, as Substrate's Aura does (it only reports). Refusing it
would let an equivocating author split honest nodes for good: a node that saw block A first
would refuse B and every descendant of B, while a node that saw B first would do the
opposite. Imported, both blocks reach every node, and fork choice and finality pick one.
(A third block of the slot, announced, is not fetched on its own by the network sync: it
comes in as the parent of a block that builds on it. node.network.sync, retest45's F0.)

The seal is checked before the equivocation lookup, so stored evidence always consists of
two headers the author really signed.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable

from chain.blockchain import Blockchain
from chain.codec import U64, AccountId, Wire, decode, encode
from chain.crypto import ss58_encode
from chain.errors import InvalidSignature
from chain.header import Header, verify_seal
from chain.pallets.items import StateAccess
from chain.pallets.staking import get_validators, is_disabled
from consensus.errors import InvalidHeader

log = logging.getLogger("polchain.consensus")

EVIDENCE_PREFIX = b"aura/"
DEFAULT_MAX_FUTURE_SLOTS = 2


class AuraEquivocation(Wire, frozen=True):
    """Two headers sealed by ``author`` in ``slot``: the first one stored, then the second."""

    slot: U64
    author: AccountId
    first: Header
    second: Header


def compute_slot_author(validators: tuple[bytes, ...], slot: int) -> bytes:
    """Aura's rule: slot s belongs to validator s mod n (round robin over the set)."""
    if not validators:
        raise InvalidHeader("not_validator", "the validator set is empty")
    return validators[slot % len(validators)]


def compute_slot(timestamp_ms: int, slot_ms: int) -> int:
    """The slot that contains ``timestamp_ms`` (milliseconds since the Unix epoch)."""
    return timestamp_ms // slot_ms


def compute_evidence_key(slot: int, author: bytes) -> bytes:
    return EVIDENCE_PREFIX + struct.pack(">Q", slot) + author


def get_equivocations(chain: Blockchain) -> list[AuraEquivocation]:
    """Every Aura equivocation this node has seen, by slot then author."""
    return [decode(value, AuraEquivocation) for _, value in chain.iter_evidence(EVIDENCE_PREFIX)]


class Aura:
    """The slot rules with a clock: ``clock()`` gives seconds since the epoch (time.time)."""

    def __init__(
        self,
        slot_ms: int,
        *,
        max_future_slots: int = DEFAULT_MAX_FUTURE_SLOTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if slot_ms < 1:
            raise ValueError(f"a slot lasts at least 1 ms, got {slot_ms}")
        if max_future_slots < 0:
            raise ValueError(f"max_future_slots must be >= 0, got {max_future_slots}")
        self.slot_ms = slot_ms
        self.max_future_slots = max_future_slots
        self.clock = clock

    def current_slot(self) -> int:
        return compute_slot(int(self.clock() * 1000), self.slot_ms)

    def is_ahead(self, slot: int) -> bool:
        """Whether a header in ``slot`` is refused now as ahead of the clock ("future_slot"):
        more than ``max_future_slots`` after the clock's slot. (The sync starts no walk for one:
        node.network.sync.)"""
        return slot > self.current_slot() + self.max_future_slots

    def check_claim(self, chain: Blockchain, parent: Header, author: bytes, slot: int) -> None:
        """May ``author`` seal a block on ``parent`` in ``slot``? (Authoring; no clock check:
        an instant-seal node runs ahead of the clock on purpose.)"""
        _check_slot_order(parent, slot, parent.number + 1)
        state = chain.state_at(parent.hash())
        if author != compute_slot_author(get_validators(state), slot):
            raise InvalidHeader("wrong_author", f"slot {slot} does not belong to {ss58_encode(author)} (Aura round robin)")
        _check_enabled(state, author, parent.number + 1)
        if chain.get_slot_blocks(slot, author):
            raise InvalidHeader("equivocation", f"{ss58_encode(author)} already sealed a block in slot {slot}")

    def verify_header(self, chain: Blockchain, header: Header, parent: Header) -> None:
        """Check an incoming header against its stored parent (see the module docstring)."""
        _check_slot_order(parent, header.slot, header.number)
        if self.is_ahead(header.slot):
            raise InvalidHeader(
                "future_slot",
                f"block #{header.number} is in slot {header.slot}, more than {self.max_future_slots} after the local slot "
                f"{self.current_slot()}",
            )
        state = chain.state_at(header.parent_hash)
        validators = get_validators(state)
        if header.author not in validators:
            raise InvalidHeader("not_validator", f"block #{header.number} is authored by {header.author.hex()}, not a validator")
        if header.author != compute_slot_author(validators, header.slot):
            raise InvalidHeader(
                "wrong_author", f"block #{header.number}: slot {header.slot} belongs to another validator (Aura round robin)"
            )
        _check_enabled(state, header.author, header.number)
        try:
            verify_seal(chain.genesis_hash, header)
        except InvalidSignature as exc:
            raise InvalidHeader("bad_seal", f"block #{header.number}: bad seal: {exc}") from None
        others = [h for h in chain.get_slot_blocks(header.slot, header.author) if h != header.hash()]
        if others:
            evidence = AuraEquivocation(header.slot, header.author, chain.get_header(others[0]), header)
            chain.put_evidence(compute_evidence_key(header.slot, header.author), encode(evidence))
            log.warning(
                "block #%d: %s already sealed block %s in slot %d (equivocation, evidence stored; imported all the same)",
                header.number, ss58_encode(header.author), others[0].hex(), header.slot,
            )


def _check_enabled(state: StateAccess, author: bytes, number: int) -> None:
    if is_disabled(state, author):
        raise InvalidHeader(
            "disabled_author",
            f"block #{number}: {ss58_encode(author)} is disabled: punished for an offence, it leaves the set at the next era start",
        )


def _check_slot_order(parent: Header, slot: int, number: int) -> None:
    if slot <= parent.slot:
        raise InvalidHeader("slot_not_increasing", f"block #{number} is in slot {slot}, not after its parent's {parent.slot}")
