"""Tests that kill the mutants mutation testing (mutmut, see README "Development") found
alive in consensus/aura.py: parameter ranges, the whole-number local slot, the evidence key
layout, and the reason, message and evidence of each refusal. Forgeries are re-sealed by a
real validator key, so only the one rule under test is broken.

Survivors explained (equivalent mutants; ids from ``mutmut results``):

- ``x_compute_evidence_key__mutmut_8``: ``struct.pack(">q", slot)`` instead of ``">Q"``. A slot
  is a ``U64`` wire integer, which chain/codec.py caps at 2**63 - 1 (msgpack's signed range);
  below that the signed and unsigned big-endian bytes are identical, and a header with a
  larger slot cannot be decoded (nor pass the future-slot check), so no key differs.
"""

from __future__ import annotations

import msgspec
import pytest
from consensuskit import BOB, CHARLIE, build, open_local

from chain import calls
from chain.block import Block
from chain.extrinsic import sign_extrinsic
from chain.header import Header, seal_header
from consensus.aura import Aura, compute_evidence_key, compute_slot_author, get_equivocations
from consensus.errors import InvalidHeader


def _reseal(genesis: bytes, header: Header, key, **changes) -> Header:
    return seal_header(key, genesis, msgspec.structs.replace(header, **changes))


def test_aura_parameters_are_range_checked_at_their_bounds() -> None:
    with pytest.raises(ValueError, match=r"^a slot lasts at least 1 ms, got 0$"):
        Aura(0)
    assert Aura(1).slot_ms == 1
    with pytest.raises(ValueError, match=r"^max_future_slots must be >= 0, got -1$"):
        Aura(1000, max_future_slots=-1)
    assert Aura(1000, max_future_slots=0).max_future_slots == 0


def test_the_local_slot_is_a_whole_slot_number() -> None:
    slot = Aura(1000, clock=lambda: 1000.75).current_slot()
    assert slot == 1000 and type(slot) is int


def test_an_empty_validator_set_names_the_cause() -> None:
    with pytest.raises(InvalidHeader, match=r"^the validator set is empty$") as err:
        compute_slot_author((), 0)
    assert err.value.reason == "not_validator"


def test_evidence_keys_hold_the_slot_big_endian() -> None:
    """Keys sort by slot over the whole U64 range (0 .. 2**63 - 1, chain/codec.py)."""
    author = bytes(range(32))
    assert compute_evidence_key(2**63 - 1, author) == b"aura/" + b"\x7f" + b"\xff" * 7 + author
    assert compute_evidence_key(255, author) < compute_evidence_key(256, author)


def test_authoring_refusals_give_the_block_number_and_reason(tmp_path) -> None:
    chain = open_local(tmp_path / "c")
    build(chain, 5)  # Bob, block #1
    assert chain.rules is not None
    with pytest.raises(InvalidHeader, match=r"^block #2 is in slot 5, not after its parent's 5$") as err:
        chain.rules.check_claim(chain, chain.best_header, BOB.public, 5)
    assert err.value.reason == "slot_not_increasing"
    genesis = chain.get_header(chain.genesis_hash)
    with pytest.raises(InvalidHeader, match="already sealed a block in slot 5") as err:
        chain.rules.check_claim(chain, genesis, BOB.public, 5)  # Bob's slot, but he sealed in it
    assert err.value.reason == "equivocation"
    chain.rules.check_claim(chain, genesis, BOB.public, 1)  # the same author in a fresh slot may
    chain.db.close()


def test_a_resealed_header_reusing_the_parents_slot_names_its_number(tmp_path) -> None:
    author = open_local(tmp_path / "author")
    node = open_local(tmp_path / "node")
    first = build(author, 5)  # Bob
    second = build(author, 6)  # Charlie
    node.import_block(first)
    same = _reseal(author.genesis_hash, second.header, BOB, slot=5, author=BOB.public)  # Bob's slot, Bob's seal
    with pytest.raises(InvalidHeader, match=r"^block #2 is in slot 5, not after its parent's 5$") as err:
        node.import_block(Block(same, second.body))
    assert err.value.reason == "slot_not_increasing"
    # The genuine block (Charlie, slot 6) imports: only the slot rule refused the forgery.
    node.import_block(second)
    assert node.best_hash == second.hash() and get_equivocations(node) == []
    author.db.close()
    node.db.close()


def test_an_equivocation_is_imported_and_its_evidence_stored(tmp_path) -> None:
    author = open_local(tmp_path / "author")
    other = open_local(tmp_path / "other")
    node = open_local(tmp_path / "node")
    first = build(author, 2)  # Charlie
    remark = sign_extrinsic(CHARLIE, calls.Remark(b"y"), nonce=0, genesis_hash=other.genesis_hash, spec_version=other.runtime.spec_version)
    second = other.build_block([remark], CHARLIE, slot=2).block  # genuinely sealed twin
    node.import_block(first)
    node.import_block(second)  # imported all the same (Substrate's Aura only reports)
    assert node.has_block(second.hash())
    (stored,) = get_equivocations(node)
    assert (stored.slot, stored.author) == (2, CHARLIE.public)
    assert (stored.first, stored.second) == (first.header, second.header)
    # Same height, same slot: fork choice takes the lower hash.
    assert node.best_hash == min(first.hash(), second.hash())
    for chain in (author, other, node):
        chain.db.close()
