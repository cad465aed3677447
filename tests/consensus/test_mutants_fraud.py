"""Mutation testing of chain/fraud.py (mutmut, see README "Development"): the tests that
kill its mutants are tests/consensus/test_fraud_proofs.py (every field of a proof tampered,
each refused with its reason; proofs against honest blocks; decoding bounds) and
test_pol_verify.py (valid proofs of every fault kind, checked on another node).

Last run (``rm -rf mutants && mutmut run --max-children 1 "consensus.pol*" "chain.fraud*"``):
467 mutants, 464 killed, 3 survived. Survivors explained (equivalent mutants; ids from
``mutmut results``):

- ``x__verify_openings__mutmut_13``, ``_16``, ``_17``: ``zip(proof.openings, wanted,
  strict=True)`` with ``strict`` None, left out or False. The line before refuses a proof
  whose opening count is not ``len(wanted)`` ("bad_opening"), so the lengths never differ.
"""

from __future__ import annotations

import pytest

from chain.errors import InvalidFraudProof
from chain.fraud import FAULT_NAMES, decode_fraud_proof


def test_the_fault_kinds_are_pinned() -> None:
    """Kinds are consensus data (a proof's ``kind`` byte): their numbers never change."""
    assert FAULT_NAMES == {0: "start", 1: "segment", 2: "end", 3: "divergence"}


def test_a_memoryview_decodes_like_bytes() -> None:
    with pytest.raises(InvalidFraudProof, match=r"^FraudProof: ") as caught:
        decode_fraud_proof(memoryview(b"\x01\x90"))
    assert caught.value.reason == "malformed"
