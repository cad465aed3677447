"""Mutation testing of chain/fraud.py (mutmut, see README "Development"): the tests that
kill its mutants are tests/consensus/test_fraud_proofs.py (every field of a proof tampered,
each refused with its reason; proofs against honest blocks; decoding bounds) and
test_pol_verify.py (valid proofs of every fault kind, checked on another node).

Last run (2026-11-29, after the "not_validator" rule; ``rm -rf mutants && mutmut run
--max-children 2 "chain.fraud*"``): 476 mutants, 473 killed, 3 survived. Every mutant of
the rule's lines in ``x_verify_fraud_proof`` is killed; the test that pins them is
test_fraud_proofs.py::test_a_block_sealed_by_a_non_validator_proves_nothing (reason and
the author named in the message). (The first run of this round hung on the mutants of
compute_fraud_proof's helpers, their re-runs never starting, and was stopped: mutmut's
forked children inherited the re-run pool without its threads, see
test_a_forked_process_gets_its_own_rerun_pool.) Survivors explained (equivalent mutants;
ids from ``mutmut results``):

- ``x__verify_openings__mutmut_13``, ``_16``, ``_17``: ``zip(proof.openings, wanted,
  strict=True)`` with ``strict`` None, left out or False. The line before refuses a proof
  whose opening count is not ``len(wanted)`` ("bad_opening"), so the lengths never differ.

Then ``_verify_latest_version`` (the start fault of a call naming no version is proven only
against the latest version made before its block; ``mutmut run --max-children 2
"chain.fraud.x__verify_latest_version*"``, 2026-11-29): 40 mutants, 39 killed by
test_fraud_proofs.py::test_a_start_fault_cannot_be_framed_by_naming_an_older_version, 1
survived:

- ``x__verify_latest_version__mutmut_18``: ``made.block >= number`` instead of ``>`` in the
  "made after the block" refusal. The line before has already refused ``made.block ==
  number`` (made in the block itself), so the two conditions select the same versions.
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


def test_a_forked_process_gets_its_own_rerun_pool() -> None:
    """mutmut runs each mutant in a child forked from the process that ran the tests once,
    and the re-run pool (ml_runtime.job.get_rerun_pool) is kept per process: the child
    inherited a pool whose threads stayed in the parent, so the first re-run it submitted
    waited forever and every mutant of compute_fraud_proof's helpers "timed out". A forked
    child now makes its own pool on first use."""
    import os

    from ml_runtime.job import get_rerun_pool

    assert get_rerun_pool(1).submit(int, "7").result(timeout=5) == 7  # the parent's pool, with its thread
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its re-run finishes
        try:
            ok = get_rerun_pool(1).submit(int, "8").result(timeout=5) == 8
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
