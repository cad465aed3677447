"""The pol pallet's offences through real blocks on the `local` chain (Alice, Bob, Charlie and
Dave validate; Eve reports): an Aura equivocation and a double or surround finality vote are
slashed by the exact fraction, the reporter is paid its share, the rest is burned, and the
offender leaves the validator set at the next era start (not before), after which Aura
refuses its blocks. Every malformed or non-offence report fails with its specific error and
changes nothing but the fee and nonce; a second report of one offence is refused.

Mutation testing of ab71097 and 550c116's runtime and fraud lines (2026-11-30, 08:38-09:05 UTC;
the same run's other functions are recorded in tests/chain/test_federated_round.py and
tests/chain/test_democracy.py): in a scratch copy whose ``[tool.mutmut]`` had only_mutate
narrowed to chain/blockchain.py, chain/runtime.py, chain/fraud.py, chain/pallets/federated.py,
democracy.py, governance.py and node/service.py (and the test selection to
tests/chain/test_governance.py, for the stats run), ``mutmut run --max-children 2
"chain.blockchain.x_nothing_matches*"`` made the mutants (the filter matched none, so none ran);
the 336 mutants of 18 functions whose changed lines are all lines ``git diff abf95ca a7fc268``
adds were each applied with ``mutmut apply NAME`` and their tests run in a fresh ``python -m
pytest -x`` process (two at a time), the file restored after each. Tests: for blockchain.py,
this file's ``-k stale``, tests/chain/test_blockchain.py's ``-k runtime_bug`` and
tests/node/test_validator_ops.py's ``-k stale``; for node/service.py the last; for runtime.py
and fraud.py this file's ``-k "lowers or heavier"``. Killed/total, before -> after the tests
added then (each watched failing on its mutants): Blockchain.build_block 10/10, _build_block
(the ``leave_out`` lines) 15/15, _apply_candidate 21/23 -> 23/23; NodeService.author_block
(``leave_out=STALE_REPORT_ERRORS``) 5/5; Runtime.compute_dispatch_info 13/17 -> 14/17;
verify_fraud_proof (the too_heavy check) 21/21. Killed by the new tests: the undo's
``results.pop(None, ...)`` and ``openings.pop(None, ...)`` (test_blockchain.py's
test_a_runtime_bug_after_training_leaves_no_result_or_opening_behind, now also with the failing
TRAIN last: before, the TRAIN included after it at the same index overwrote what it left), and
compute_dispatch_info's ``or`` for ``and`` (every settling call declared a whole block:
test_only_a_settling_call_heavier_than_a_block_declares_a_blocks_weight). The 3 survivors are
equivalent:

- compute_dispatch_info's ``info.weight >= limit``: at the limit exactly it returns
  DispatchInfo(limit, result_length, transcript_bytes), equal to the info it had (three fields).
- compute_dispatch_info's capped info without ``info.result_length`` (its transcript_bytes
  taken for it) or without ``info.transcript_bytes`` (2): only SETTLING_CALLS are capped, and
  ReportFraud, RevealSegment and CloseRound all declare DispatchInfo(weight), both fields 0.

Mutation testing of 01f33b5, cabba2f, 6211b3a and 5de4aad (2026-11-30, 11:15-11:35 UTC, mutmut
3.8.1; the network half is recorded in tests/node/test_network_service.py): in a scratch copy
(``git archive`` of 5de4aad) whose ``[tool.mutmut]`` had only_mutate narrowed to
chain/blockchain.py, chain/runtime.py, chain/pallets/pol.py, chain/pallets/training.py,
node/network/service.py and node/network/sync.py (the test selection to
tests/chain/test_wire.py), ``mutmut run --max-children 2 "chain.blockchain.x_nothing_matches*"``
made the mutants (none ran). In scope: each mutant of the named functions whose changed lines
are all lines the four commits added (``git blame`` at 5de4aad), less those that change only
an argument the commit re-wrapped but did not change (12 of _build_block's ``_apply_candidate``
call) and the other fields of _verify_extrinsic's ``return`` (6): 208. Each was applied with
``mutmut apply NAME`` in one of two scratch copies and its tests run in a fresh ``python -m
pytest -x`` (two at a time, 150 s timeout, none reached), the file restored after each. Tests,
as node ids of: for _build_block this file's ``-k stale``; for get_block_bytes
tests/chain/test_blockchain.py's ``-k bytes_put``, then the network selection of cabba2f; for
_verify_extrinsic (the priority line is there: verify_extrinsic calls it),
compute_report_fraud_weight and compute_check_weight this file's ``-k "five_times or
charged_for_its_check or settling or fraud"``. Killed/total, before -> after the tests added
then (each watched failing on its mutants): Blockchain._build_block (the ``behind`` Counter
and the leave_out choice) 14/14; Blockchain.get_block_bytes 26/27 -> 27/27;
Runtime._verify_extrinsic (the priority) 11/11; compute_report_fraud_weight 17/18 -> 18/18;
training.compute_check_weight 14/14. Killed by the new assertions:
get_block_bytes's ``_EMPTY_BODY if (body is None) and False`` (no test had a header stored
without its body: test_a_blocks_bytes_put_together_from_storage_are_its_encoding now deletes
one's body, and get_block_bytes serves the empty body get_block reads) and
compute_report_fraud_weight's ``work or 1`` (a TRAIN naming no known model declares the base
weight alone, for every fault kind, now in
test_a_start_or_end_fault_report_is_charged_for_its_check_not_for_a_re_run). No survivors are
left and no bug was found.

Mutation testing of 7914429 and 0ccd813 (a pool's admission of a call: CallRow.admit), the
same run as tests/chain/test_forks.py's docstring gives (2026-11-30, 14:06-14:18 UTC; each
mutant put into its own function by a script, not ``mutmut apply``; in scope the mutants whose
changed lines those commits wrote, not the lines they only moved out of the apply_ handlers).
Tests: tests/chain/test_federated_pallet.py ``-k "admits_only or bad_challenges"``, this file,
tests/node/test_pool_node.py ``-k train``. Killed/in scope, before -> after the tests added then
(each watched failing on its mutant): Runtime.verify_admissible 19/19; federated
find_revealing_update (its ``number`` line) 0/1 -> 1/1, verify_reveal_admissible 10/10 (the 8
of _verify_undecided are its moved ``status != COMMITTED`` lines: out of scope);
training.verify_admissible 8/8; pol _find_new_fraud 28/29 -> 29/29, verify_report_admissible
16/18 -> 18/18, _find_equivocation 12/12, _find_vote_equivocation 12/12. Killed by:

- a reveal admitted in its deadline's block (test_federated_pallet.py's
  test_a_pool_admits_only_a_reveal_the_round_awaits: ``number >= info.reveal_deadline``);
- the pool refusing an offender's own reports, fraud
  (test_a_valid_fraud_proof_slashes_the_author_and_removes_it_at_the_next_era) and vote
  (test_a_pool_admits_no_report_of_an_offence_punished_already): verify_report_admissible
  passing ``None`` for the reporter;
- _find_new_fraud's ``here`` passed as None (a block of this chain judged as another fork's:
  a second forged TRAIN of a block, or of a punished author, refused): killed by
  tests/chain/test_bounties.py's test_a_second_forged_train_in_one_block_is_proven_after_a_bait
  and test_a_second_forgery_of_a_punished_author_is_proven_and_voids_its_claim, outside this
  selection.

No survivors; no bug was found.

Mutation testing of af65a62 and 936edaf (a TRAIN naming no version trains the latest made
before its block; a fraud proof rebuilds its job without the version's weights but for a start
fault), the same run as tests/chain/test_block_mutants.py's docstring gives (mut17, 2026-11-30,
18:12-18:24 UTC; in scope the mutants of the lines those commits wrote). Tests, in this order,
each run stopping at the first that fails: tests/consensus/test_fraud_proofs.py with
tests/chain/test_weights_reads.py; tests/chain/test_federated_round.py ``-k before_the_block``;
this file. Killed/in scope, before -> after the test added (watched failing on its mutant):
fraud._rebuild_job 16/17; fraud._verify_latest_version 10/10; models.compute_latest_before
16/17 -> 17/17 (``version = 1`` loops for ever: killed by the 300 s timeout);
training.compute_parent 11/11; training.verify_job_inputs (the ``compute_parent`` and
``read_weights`` lines) 22/22, float64 zeros for float32 (``dtype=None``, no dtype) included.
Killed by test_the_latest_version_before_a_block_is_version_0_for_a_model_registered_in_it:
compute_latest_before's ``while version >= 0`` (a model registered in the block walked on to
version -1). Left:

- _rebuild_job passing ``None`` for the block number to compute_job_at: the call is pinned to
  the proof's parent version (``from_version`` set), so compute_parent never reads the number
  (the no-version check is _verify_latest_version's, with ``proof.header.number``). Equivalent.

No bug was found.
"""

from __future__ import annotations

import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import msgspec
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/forgery.py
from chainkit import ALICE, BOB, CHARLIE, apply_fee_only, open_chain, sign, train_call
from forgery import forge_outcome, forging_trainer

import ml_runtime
from chain import calls
from chain.blockchain import Blockchain
from chain.crypto import Keypair, blake2_256, dev_keypair, ss58_encode
from chain.errors import CodecError
from chain.extrinsic import decode_extrinsic
from chain.header import Header, seal_header
from chain.pallets import balances, datasets, models, pol, staking, system
from chain.storage import Database
from chain.votes import Checkpoint, SignedVote, Vote, sign_vote
from consensus.errors import InvalidHeader
from consensus.finality import VoteEquivocationEvidence
from genesis.spec import load_chain_spec

DAVE, EVE = dev_keypair("Dave"), dev_keypair("Eve")
KEYS = {k.public: k for k in (ALICE, BOB, CHARLIE, DAVE, EVE)}
PPM = 1_000_000


class Local:
    """A `local` chain whose blocks are sealed by their slot's owner (one slot per block)."""

    def __init__(self, chain: Blockchain) -> None:
        self.chain = chain
        self.slot = 0

    def owner(self, slot: int) -> Keypair:
        validators = staking.get_validators(self.chain.state.overlay())
        return KEYS[validators[slot % len(validators)]]

    def block(self, xts=()):
        """The next block, in the next slot whose owner is not disabled (Aura leaves a disabled
        owner's slots empty)."""
        self.slot += 1
        while staking.is_disabled(self.chain.state.overlay(), self.owner(self.slot).public):
            self.slot += 1
        return self.chain.build_block(list(xts), self.owner(self.slot), slot=self.slot)

    def until(self, number: int) -> None:
        """Build empty blocks until the best block is #number."""
        while self.chain.best_number < number:
            self.block()

    def report(self, call, key: Keypair = EVE):
        """One block holding ``key``'s extrinsic; its receipt. A failed report must change
        the state by the fee and nonce only (the block's author gets the fee)."""
        chain = self.chain
        nonce = balances.get_account(chain.state.overlay(), key.public).nonce
        xt = sign(chain, key, call, nonce)
        parent_root = chain.state.root()
        imported = self.block([xt])
        author = imported.block.header.author
        (receipt,) = imported.receipts
        if not receipt.success:
            expected = chain.state.overlay(at=parent_root)
            apply_fee_only(chain, expected, chain.best_number, key.public, receipt.fee, author)
            assert chain.state.root() == chain.state.compute_commit(expected).root, "a failed report changed more than its fee"
            info = chain.runtime.compute_dispatch_info(chain.state.overlay(at=parent_root), xt)
            assert receipt.fee == chain.runtime.compute_fee(info, len(xt.encode()), 0), "a failed report's fee is kept whole"
        return receipt

    def fails(self, call, error: str, key: Keypair = EVE) -> str:
        """The call fails with ``pallet.Error`` (the pol pallet's unless ``error`` names one)."""
        receipt = self.report(call, key)
        name = error if "." in error else f"pol.{error}"
        assert not receipt.success and receipt.error.startswith(f"{name}:"), receipt.error
        return receipt.error


@pytest.fixture
def local(tmp_path):
    chain = open_chain(tmp_path / "db", load_chain_spec("local"))
    yield Local(chain)
    chain.db.close()


@lru_cache(maxsize=1)
def local_genesis() -> bytes:
    """The genesis hash of the local spec's chain (the ``local`` fixture's)."""
    with tempfile.TemporaryDirectory() as tmp:
        chain = open_chain(Path(tmp) / "db", load_chain_spec("local"))
        chain.db.close()
        return chain.genesis_hash


def sealed(
    key: Keypair, slot: int, state_root: bytes, parent: bytes = bytes(32), number: int = 1, genesis: bytes | None = None
) -> bytes:
    """An encoded header sealed by ``key`` (a real ed25519 seal) for the chain whose genesis is
    ``genesis``, the local chain's unless given."""
    header = Header(parent, number, state_root, bytes(32), slot, key.public)
    return seal_header(key, genesis or local_genesis(), header).encode()


def vote(chain: Blockchain, key: Keypair, source_round: int, target_round: int, target: bytes, set_id: int = 0) -> bytes:
    v = Vote(set_id, Checkpoint(chain.genesis_hash, 0, source_round), Checkpoint(target, 1, target_round))
    return msgspec.msgpack.encode(sign_vote(key, chain.genesis_hash, v))


def _state(chain: Blockchain):
    return chain.state.overlay()


def _expect_slash(chain: Blockchain, receipt, offender: bytes, before: dict) -> staking.Slash:
    """The slash is exact: fraction of the stake, reporter share, burn = issuance drop."""
    cfg = chain.config
    amount = before["staked"] * cfg.slash_fraction_ppm // PPM
    reward = amount * cfg.reporter_share_ppm // PPM
    state = _state(chain)
    assert balances.get_account(state, offender).staked == before["staked"] - amount
    assert balances.get_account(state, EVE.public).free == before["eve"] - receipt.fee + reward
    assert balances.TOTAL_ISSUANCE.get(state) == before["issuance"] - (amount - reward)
    slashed = [e for e in receipt.events if (e.pallet, e.name) == ("staking", "Slashed")]
    assert [dict(e.args) for e in slashed] == [
        {"who": "0x" + offender.hex(), "amount": amount, "reporter_reward": reward, "burned": amount - reward}
    ]
    assert amount > 0 and reward > 0 and amount - reward > 0
    return staking.Slash(amount, reward, amount - reward)


def _before(chain: Blockchain, offender: bytes) -> dict:
    state = _state(chain)
    return {
        "staked": balances.get_account(state, offender).staked,
        "eve": balances.get_account(state, EVE.public).free,
        "issuance": balances.TOTAL_ISSUANCE.get(state),
    }


def test_aura_equivocation_is_slashed_and_the_author_leaves_at_the_next_era(local, tmp_path) -> None:
    chain = local.chain
    era = chain.config.era_length
    assert era >= 4
    local.block()  # #1, slot 1: Bob's
    first = chain.best_header
    assert first.author == BOB.public
    second = sealed(BOB, first.slot, b"\x01" * 32, first.parent_hash)  # Bob seals another block in slot 1
    before = _before(chain, BOB.public)
    receipt = local.report(calls.ReportEquivocation(first.encode(), second))
    assert receipt.success, receipt.error
    _expect_slash(chain, receipt, BOB.public, before)
    proven = [dict(e.args) for e in receipt.events if (e.pallet, e.name) == ("pol", "EquivocationProven")]
    assert proven == [{"kind": "aura", "offender": "0x" + BOB.public.hex(), "slot": 1, "slashed": before["staked"] // 2}]
    key = pol.compute_offence_key(pol.OFFENCE_AURA, 1, BOB.public)
    assert pol.get_offence(_state(chain), key).reporter == EVE.public
    assert staking.PENDING_REMOVAL.get(_state(chain)) == (BOB.public,)

    # Not before the era starts: Bob stays a validator up to block era - 1, but disabled: Aura
    # refuses the blocks he seals in his slots, which stay empty.
    local.until(era - 1)
    assert BOB.public in staking.get_validators(_state(chain))
    assert BOB.public not in {chain.get_header(chain.get_hash(n)).author for n in range(3, era)}
    parent = chain.best_header
    bobs_slot = next(s for s in range(parent.slot + 1, parent.slot + 5) if local.owner(s) == BOB)
    with pytest.raises(InvalidHeader) as err:
        chain.build_block([], BOB, slot=bobs_slot)
    disabled = f"{ss58_encode(BOB.public)} is disabled: punished for an offence, it leaves the set at the next era start"
    assert err.value.reason == "disabled_author" and str(err.value).endswith(f"block #{parent.number + 1}: {disabled}"), str(err.value)
    spec = load_chain_spec("local")
    loose = Blockchain(Database(tmp_path / "disabled"), chain_id=spec.id, build_genesis=spec.apply_genesis)
    for n in range(1, chain.best_number + 1):
        loose.import_block(chain.get_block(chain.get_hash(n)))
    bobs = loose.build_block([], BOB, slot=bobs_slot).block  # no consensus rules on this one: sealed all the same
    with pytest.raises(InvalidHeader) as err:
        chain.import_block(bobs)
    assert err.value.reason == "disabled_author" and str(err.value).endswith(f"block #{bobs.header.number}: {disabled}"), str(err.value)
    loose.db.close()
    local.until(era)  # the era's first block removes Bob before its extrinsics
    state = _state(chain)
    assert staking.get_validators(state) == (ALICE.public, CHARLIE.public, DAVE.public)
    assert staking.PENDING_REMOVAL.get(state) == ()
    assert staking.REMOVED.get(state, BOB.public) == staking.Removal(1, era)

    # Aura now refuses Bob: for authoring, and for a block he sealed that a node imports.
    parent = chain.best_header
    with pytest.raises(InvalidHeader) as err:
        chain.build_block([], BOB, slot=parent.slot + 1)
    assert err.value.reason == "wrong_author"
    spec = load_chain_spec("local")
    loose = Blockchain(Database(tmp_path / "loose"), chain_id=spec.id, build_genesis=spec.apply_genesis)
    for n in range(1, era + 1):
        loose.import_block(chain.get_block(chain.get_hash(n)))
    bobs = loose.build_block([], BOB, slot=parent.slot + 1).block  # no consensus rules on this one
    with pytest.raises(InvalidHeader) as err:
        chain.import_block(bobs)
    assert err.value.reason == "not_validator"
    loose.db.close()
    local.block()  # the three left take turns
    assert chain.best_header.author in {ALICE.public, CHARLIE.public, DAVE.public}


@pytest.mark.parametrize(
    ("kind", "links", "round_number"),
    [("double_vote", ((0, 3), (0, 3)), 3), ("surround_vote", ((0, 5), (1, 4)), 5), ("surround_vote", ((2, 3), (1, 6)), 6)],
)
def test_vote_equivocation_is_slashed(local, kind, links, round_number) -> None:
    chain = local.chain
    (s1, t1), (s2, t2) = links
    first = vote(chain, CHARLIE, s1, t1, b"\xaa" * 32)
    second = vote(chain, CHARLIE, s2, t2, b"\xbb" * 32)
    before = _before(chain, CHARLIE.public)
    receipt = local.report(calls.ReportVoteEquivocation(first, second))
    assert receipt.success, receipt.error
    slash = _expect_slash(chain, receipt, CHARLIE.public, before)
    proven = [dict(e.args) for e in receipt.events if (e.pallet, e.name) == ("pol", "EquivocationProven")]
    assert proven == [
        {"kind": kind, "offender": "0x" + CHARLIE.public.hex(), "set_id": 0, "round": round_number, "slashed": slash.amount}
    ]
    assert pol.get_offence(_state(chain), pol.compute_offence_key(pol.OFFENCE_VOTE, 0, round_number, CHARLIE.public))
    assert staking.PENDING_REMOVAL.get(_state(chain)) == (CHARLIE.public,)
    # the other order is the same offence
    local.fails(calls.ReportVoteEquivocation(second, first), "DuplicateReport")


def test_a_second_report_of_one_offence_is_refused(local) -> None:
    chain = local.chain
    local.block()
    first = chain.best_header.encode()
    other = sealed(BOB, 1, b"\x02" * 32, chain.genesis_hash)
    assert local.report(calls.ReportEquivocation(first, other)).success
    staked = balances.get_account(_state(chain), BOB.public).staked
    local.fails(calls.ReportEquivocation(first, other), "DuplicateReport")
    local.fails(calls.ReportEquivocation(other, sealed(BOB, 1, b"\x03" * 32, chain.genesis_hash)), "DuplicateReport", key=DAVE)
    assert balances.get_account(_state(chain), BOB.public).staked == staked


def _admission(chain, key: Keypair, call) -> str | None:
    """What a pool says of ``key``'s report (Runtime.verify_admissible): None if admitted."""
    from chain.errors import InvalidTransaction

    try:
        chain.runtime.verify_admissible(chain.state.overlay(), sign(chain, key, call, 0), chain.best_number + 1)
    except InvalidTransaction as exc:
        assert exc.reason == "call"
        return str(exc)
    return None


def test_a_pool_admits_no_report_of_an_offence_punished_already(local) -> None:
    """A report of an offence punished already is left out of a block at no fee to its sender
    (STALE_REPORT_ERRORS), yet every pool took it at five times its declared fee in priority:
    8,192 such reports, signed again with another tip each slot, kept a pool full for nothing
    (an outside tester's finding, round 9). The pool's check now refuses it, with the reason
    the block would give; a report of a new offence is admitted."""
    chain = local.chain
    local.block()
    first = chain.best_header.encode()
    other = sealed(BOB, 1, b"\x02" * 32, chain.genesis_hash)
    report = calls.ReportEquivocation(first, other)
    assert _admission(chain, EVE, report) is None
    assert _admission(chain, BOB, report).startswith("pol.SelfReport: ")
    assert local.report(report).success
    assert _admission(chain, DAVE, report).startswith("pol.DuplicateReport: ")
    votes = calls.ReportVoteEquivocation(vote(chain, BOB, 0, 3, b"\xaa" * 32), vote(chain, BOB, 0, 3, b"\xbb" * 32))
    assert _admission(chain, DAVE, votes).startswith("pol.AlreadyPunished: ")
    fresh = calls.ReportVoteEquivocation(vote(chain, CHARLIE, 0, 3, b"\xaa" * 32), vote(chain, CHARLIE, 0, 3, b"\xbb" * 32))
    assert _admission(chain, DAVE, fresh) is None
    assert _admission(chain, CHARLIE, fresh).startswith("pol.SelfReport: ")  # (a vote report's reporter is checked too)


def test_an_author_leaves_out_the_reports_another_report_made_stale(tmp_path) -> None:
    """Eve's and Ferdie's reports of Bob's equivocation race into one block, then Dave's
    report of Bob's vote equivocation (one slash per removal): built with ``leave_out`` =
    pol.STALE_REPORT_ERRORS, the block is the block of Eve's report alone, bit for bit (the
    same hash, so the same state root: Ferdie's fee and nonce are undone with the rest), each
    left-out report is handed to ``on_invalid`` as "stale" with the error it would have had,
    and the block imports on a node that never saw the others. Built without it (the default,
    and any other author's choice), the others are included and fail, their senders paying."""
    ferdie = dev_keypair("Ferdie")
    spec = load_chain_spec("local")
    chains = [open_chain(tmp_path / name, spec) for name in ("racing", "alone", "plain", "importer")]
    racing, alone, plain, importer = chains
    try:
        for chain in chains[:3]:
            Local(chain).block()  # #1, slot 1: Bob's
        header = racing.best_header
        other = sealed(BOB, header.slot, b"\x02" * 32, header.parent_hash)
        report = calls.ReportEquivocation(header.encode(), other)
        votes = calls.ReportVoteEquivocation(vote(racing, BOB, 0, 3, b"\xaa" * 32), vote(racing, BOB, 0, 3, b"\xbb" * 32))
        first = sign(racing, EVE, report, 0)
        duplicate, punished = sign(racing, ferdie, report, 0), sign(racing, DAVE, votes, 0)
        author = Local(racing).owner(2)
        left_out: list[tuple[bytes, str, str]] = []
        built = racing.build_block(
            [first, duplicate, punished], author, slot=2, leave_out=pol.STALE_REPORT_ERRORS,
            on_invalid=lambda h, exc: left_out.append((h, exc.reason, str(exc))),
        )
        expected = alone.build_block([first], author, slot=2)
        assert built.block.hash() == expected.block.hash()
        assert [r.success for r in built.receipts] == [True]
        offender = ss58_encode(BOB.public)
        assert left_out == [
            (blake2_256(duplicate.encode()), "stale", f"left out of the block: pol.DuplicateReport: this offence of {offender} is punished already"),
            (blake2_256(punished.encode()), "stale", (
                f"left out of the block: pol.AlreadyPunished: {offender} was slashed for an earlier offence and is disabled "
                "until it leaves the set, or has left it: one slash per removal"
            )),
        ]
        for key in (ferdie, DAVE):
            assert balances.get_account(_state(racing), key.public) == balances.get_account(_state(alone), key.public)
        for n in (1, 2):
            importer.import_block(racing.get_block(racing.get_hash(n)))
        assert importer.state.root() == racing.state.root()
        included = plain.build_block([first, duplicate, punished], author, slot=2)
        assert [(r.success, (r.error or "").partition(":")[0]) for r in included.receipts] == [
            (True, ""), (False, "pol.DuplicateReport"), (False, "pol.AlreadyPunished")
        ]
        assert balances.get_account(_state(plain), ferdie.public).nonce == 1
    finally:
        for chain in chains:
            chain.db.close()


def test_a_stale_report_with_a_later_transaction_of_its_sender_behind_it_is_included(tmp_path) -> None:
    """Left out, Ferdie's stale report would leave his nonce 0 unused and his transfer at
    nonce 1, ready in the same pool, stuck for good behind the gap. So an author leaves a
    stale report out only when no later candidate of its sender follows it: here the report is
    included and fails (Ferdie pays its fee) and his transfer is included after it."""
    ferdie = dev_keypair("Ferdie")
    spec = load_chain_spec("local")
    chain = open_chain(tmp_path / "racing", spec)
    try:
        Local(chain).block()  # #1, slot 1: Bob's
        header = chain.best_header
        other = sealed(BOB, header.slot, b"\x02" * 32, header.parent_hash)
        report = calls.ReportEquivocation(header.encode(), other)
        first, duplicate = sign(chain, EVE, report, 0), sign(chain, ferdie, report, 0)
        then = sign(chain, ferdie, calls.Transfer(EVE.public, 10**10), 1)
        left_out: list[str] = []
        built = chain.build_block(
            [first, duplicate, then], Local(chain).owner(2), slot=2, leave_out=pol.STALE_REPORT_ERRORS,
            on_invalid=lambda h, exc: left_out.append(exc.reason),
        )
        assert left_out == []
        assert [(r.success, (r.error or "").partition(":")[0]) for r in built.receipts] == [
            (True, ""), (False, "pol.DuplicateReport"), (True, "")
        ]
        assert balances.get_account(_state(chain), ferdie.public).nonce == 2
    finally:
        chain.db.close()


def test_an_offender_cannot_report_itself(local) -> None:
    """It would take the reporter's share of its own slash, racing the honest reporters."""
    chain = local.chain
    local.block()
    first = chain.best_header.encode()
    other = sealed(BOB, 1, b"\x02" * 32, chain.genesis_hash)
    message = local.fails(calls.ReportEquivocation(first, other), "SelfReport", key=BOB)
    assert message.endswith(f"{ss58_encode(BOB.public)} cannot report its own offence"), message
    assert local.report(calls.ReportEquivocation(first, other)).success
    message = local.fails(calls.ReportEquivocation(first, other), "DuplicateReport")
    assert message.endswith(f"this offence of {ss58_encode(BOB.public)} is punished already"), message
    votes = (vote(chain, CHARLIE, 0, 3, b"\xaa" * 32), vote(chain, CHARLIE, 0, 3, b"\xbb" * 32))
    local.fails(calls.ReportVoteEquivocation(*votes), "SelfReport", key=CHARLIE)
    assert local.report(calls.ReportVoteEquivocation(*votes)).success


def test_offences_are_keyed_by_fixed_width_parts(local) -> None:
    """An offence's key is its kind's prefix and its parts, ints as u64 big-endian: state every
    node must agree on. The slot may be the largest a header carries (chain.codec's U64: a
    non-negative int64, so ">Q" and ">q" pack every one alike)."""
    chain = local.chain
    slot = 2**63 - 1
    first = sealed(BOB, slot, b"\x01" * 32, chain.genesis_hash)
    assert local.report(calls.ReportEquivocation(first, sealed(BOB, slot, b"\x02" * 32, chain.genesis_hash))).success
    key = pol.compute_offence_key(pol.OFFENCE_AURA, slot, BOB.public)
    assert key == b"aura/" + slot.to_bytes(8, "big") + BOB.public
    assert pol.get_offence(_state(chain), key).offender == BOB.public
    assert pol.compute_offence_key(pol.OFFENCE_VOTE, 0, 3, CHARLIE.public) == b"vote/" + bytes(8) + (3).to_bytes(8, "big") + CHARLIE.public


def _aura_cases() -> list[tuple[str, bytes, bytes, str, str]]:
    good = sealed(BOB, 7, b"\x01" * 32)
    other = sealed(BOB, 7, b"\x02" * 32)
    unsealed = Header(bytes(32), 1, b"\x02" * 32, bytes(32), 7, BOB.public)
    forged_seal = msgspec.structs.replace(unsealed, seal=BOB.sign(b"something else")).encode()
    return [
        ("garbage", b"\x01\x93\x01", other, "MalformedHeader", "the first header: "),
        ("empty", good, b"", "MalformedHeader", "the second header: "),
        ("non-canonical", good + b"\x00", other, "MalformedHeader", "the first header: "),
        ("different authors", good, sealed(CHARLIE, 7, b"\x02" * 32), "DifferentAuthors", "the two headers have different authors"),
        ("different slots", good, sealed(BOB, 8, b"\x02" * 32), "DifferentSlots", "the headers are in slots 7 and 8"),
        ("one block twice", good, good, "SameBlock", "the two headers are one block"),
        ("a seal over other bytes", good, forged_seal, "BadSeal", "the second header (#1): "),
        ("the first seal over other bytes", forged_seal, good, "BadSeal", "the first header (#1): "),
        ("not a validator", sealed(EVE, 7, b"\x01" * 32), sealed(EVE, 7, b"\x02" * 32), "NotValidator",
         f"{ss58_encode(EVE.public)} is not a validator"),
        # Bob's key sealed both for this chain in one slot, but on no block this chain keeps (a
        # dead fork's, or older than the window): not punishable here (pol's module docstring).
        ("two headers off this chain's window", good, other, "NotOnThisChain",
         f"neither header: block #1's parent {bytes(32).hex()} is not one of"),
        # A block numbered 0 has no parent to be on this chain (nor a number below it to look up).
        ("two headers numbered 0", sealed(BOB, 7, b"\x01" * 32, number=0), sealed(BOB, 7, b"\x02" * 32, number=0),
         "NotOnThisChain", "neither header: block #0's parent"),
    ]


def test_malformed_and_innocent_block_pairs_are_refused_with_their_error(local) -> None:
    chain = local.chain
    staked = balances.get_account(_state(chain), BOB.public).staked
    for what, first, second, error, says in _aura_cases():
        message = local.fails(calls.ReportEquivocation(first, second), error)
        assert message.startswith(f"pol.{error}: {says}"), (what, message)
    assert balances.get_account(_state(chain), BOB.public).staked == staked
    assert staking.PENDING_REMOVAL.get(_state(chain)) == ()


def test_an_equivocation_across_two_forks_of_this_chain_is_punished(local, tmp_path) -> None:
    """An author that seals one slot on the best chain and on a fork block of this chain (the
    nothing-at-stake equivocation) is punished although the fork's block is not one of this
    chain's best blocks: one header with its parent here is enough (a reviewer's finding: a rule
    that asked it of both headers, against reuse of a key on another chain, let this go)."""
    chain = local.chain
    side = Local(open_chain(tmp_path / "side", load_chain_spec("local")))
    try:
        local.block()
        side.block()  # the same #1 on both
        local.block()  # #2 in slot 2
        side.slot = 3
        fork = side.block().block  # another #2, in slot 4
        chain.import_block(fork)
        local.slot = 4
        local.block()  # #3 on #2: the fork's #2 stays off the best chain
        assert chain.has_block(fork.hash()) and chain.get_hash(2) != fork.hash()
        offender, best = local.owner(7), chain.best_header
        on_best = sealed(offender, 7, b"\x01" * 32, best.hash(), best.number + 1)
        on_fork = sealed(offender, 7, b"\x02" * 32, fork.hash(), fork.header.number + 1)
        staked = balances.get_account(_state(chain), offender.public).staked
        assert local.report(calls.ReportEquivocation(on_best, on_fork)).success
        assert balances.get_account(_state(chain), offender.public).staked < staked
    finally:
        side.chain.db.close()


def test_a_header_sealed_for_another_chain_cannot_frame_a_validator(local) -> None:
    """A key run on two chains (a testnet and its mainnet, a chain and its relaunch) seals one
    slot on each. Its header of the other chain, reported beside its header of this one, fails
    for its seal: the seal names the genesis hash (an outside tester's finding, F4: with the
    bare pre-hash signed, the report slashed the honest validator). The strongest form: the
    other chain's header has its parent on this chain too (a fork of the same genesis state
    would), so only the seal's chain can tell it apart."""
    chain = local.chain
    local.block()  # #1 in slot 1: Bob's
    here = chain.best_header
    there = sealed(BOB, here.slot, b"\x05" * 32, here.parent_hash, here.number, genesis=b"\x42" * 32)
    root, staked = chain.state.root(), balances.get_account(_state(chain), BOB.public).staked
    message = local.fails(calls.ReportEquivocation(here.encode(), there), "BadSeal")
    assert message.startswith("pol.BadSeal: the second header (#1): "), message
    assert balances.get_account(_state(chain), BOB.public).staked == staked
    assert pol.get_offence(_state(chain), pol.compute_offence_key(pol.OFFENCE_AURA, 1, BOB.public)) is None
    assert chain.state.root() != root  # (only the reporter's fee and nonce: Local.report checks it)
    # The same header sealed for this chain is the equivocation it looks like.
    ours = sealed(BOB, here.slot, b"\x05" * 32, here.parent_hash, here.number)
    assert local.report(calls.ReportEquivocation(here.encode(), ours)).success


def test_an_offender_is_slashed_once_per_removal_and_others_still_are(local) -> None:
    """Bob runs two nodes on one key (the classic validator accident): both seal in slot 1 and
    in slot 2, and both vote twice. The first report slashes half his stake and disables him;
    every other offence of his, reported before he leaves the set or after, is refused as
    AlreadyPunished, before its signatures are checked, and takes nothing more (Substrate's
    slashing spans). Before, each report took half of what was left: four reports, 15/16 of the
    stake (an expert reviewer's finding). Charlie's offence is still slashed: the cap is the
    offender's, not the era's."""
    chain = local.chain
    local.block()  # #1, slot 1: Bob's
    first = chain.best_header
    assert first.author == BOB.public
    staked = balances.get_account(_state(chain), BOB.public).staked
    assert local.report(calls.ReportEquivocation(first.encode(), sealed(BOB, 1, b"\x01" * 32, chain.genesis_hash))).success
    assert balances.get_account(_state(chain), BOB.public).staked == staked - staked // 2
    assert pol.is_punished(_state(chain), BOB.public) and staking.is_disabled(_state(chain), BOB.public)
    others = [
        calls.ReportEquivocation(*(sealed(BOB, 2, root, chain.genesis_hash) for root in (b"\x03" * 32, b"\x04" * 32))),
        calls.ReportVoteEquivocation(*(vote(chain, BOB, 0, 3, target) for target in (b"\xaa" * 32, b"\xbb" * 32))),
    ]
    left = balances.get_account(_state(chain), BOB.public).staked
    for call in others:  # (Local.report checks the state moved by the fee and nonce only)
        message = local.fails(call, "AlreadyPunished")
        assert message == (
            f"pol.AlreadyPunished: {ss58_encode(BOB.public)} was slashed for an earlier offence and is disabled until it "
            "leaves the set, or has left it: one slash per removal"
        ), message
    # A report whose seals are forged is refused for the same reason: the check comes first.
    forged = sealed(BOB, 3, b"\x05" * 32, chain.genesis_hash)[:-64] + bytes(64), sealed(BOB, 3, b"\x06" * 32, chain.genesis_hash)
    local.fails(calls.ReportEquivocation(*forged), "AlreadyPunished")
    while BOB.public in staking.get_validators(_state(chain)):
        local.block()
    assert staking.REMOVED.get(_state(chain), BOB.public) is not None and pol.is_punished(_state(chain), BOB.public)
    for call in others:
        local.fails(call, "AlreadyPunished")
    assert balances.get_account(_state(chain), BOB.public).staked == left
    # The node's reporter does not pay for a report the runtime refuses.
    from node.offences import EquivocationReporter

    evidence = VoteEquivocationEvidence(*(msgspec.msgpack.decode(v, type=SignedVote) for v in (others[1].first, others[1].second)))
    submitted: list[bytes] = []
    assert EquivocationReporter(chain, ALICE, submitted.append, lambda: ()).on_vote_equivocation(evidence) is None
    assert submitted == []
    charlie = balances.get_account(_state(chain), CHARLIE.public).staked
    receipt = local.report(calls.ReportVoteEquivocation(*(vote(chain, CHARLIE, 0, 3, t) for t in (b"\xaa" * 32, b"\xbb" * 32))))
    assert receipt.success, receipt.error
    assert balances.get_account(_state(chain), CHARLIE.public).staked == charlie - charlie // 2


def test_malformed_and_innocent_vote_pairs_are_refused_with_their_error(local) -> None:
    chain = local.chain
    a = vote(chain, DAVE, 0, 3, b"\xaa" * 32)
    other_chain = Vote(0, Checkpoint(chain.genesis_hash, 0, 0), Checkpoint(b"\xbb" * 32, 1, 3))
    foreign = msgspec.msgpack.encode(sign_vote(DAVE, b"\x42" * 32, other_chain))  # signed for another genesis
    tampered = msgspec.msgpack.decode(vote(chain, DAVE, 0, 3, b"\xbb" * 32), type=SignedVote)
    tampered = msgspec.msgpack.encode(msgspec.structs.replace(tampered, signature=bytes(64)))
    neither = "are neither a double vote (two different votes with one target round) nor a surround vote"
    cases = [
        (b"\x93\x00", a, "MalformedVote", "the first vote: "),
        (a, a + b"\x00", "MalformedVote", "the second vote: "),
        (a, vote(chain, CHARLIE, 0, 3, b"\xbb" * 32), "DifferentVoters", "the two votes have different voters"),
        (a, vote(chain, DAVE, 0, 3, b"\xbb" * 32, set_id=1), "DifferentSets", "the votes are for sets 0 and 1"),
        (a, a, "NotEquivocation", f"links 0->3 and 0->3 {neither}"),  # one vote twice
        (a, vote(chain, DAVE, 3, 4, b"\xbb" * 32), "NotEquivocation", f"links 0->3 and 3->4 {neither}"),  # consecutive links
        (a, vote(chain, DAVE, 0, 4, b"\xbb" * 32), "NotEquivocation", "links 0->3 and 0->4"),  # one source, later target
        (a, foreign, "BadSignature", "the second vote: "),
        (tampered, a, "BadSignature", "the first vote: "),
        (vote(chain, EVE, 0, 3, b"\xaa" * 32), vote(chain, EVE, 0, 3, b"\xbb" * 32), "NotValidator",
         f"{ss58_encode(EVE.public)} is not a validator"),
    ]
    for first, second, error, says in cases:
        message = local.fails(calls.ReportVoteEquivocation(first, second), error)
        assert message.startswith(f"pol.{error}: {says}"), message
    assert staking.PENDING_REMOVAL.get(_state(chain)) == ()


def test_oversize_evidence_is_refused_before_it_is_decoded(local) -> None:
    chain = local.chain
    huge_header = calls.ReportEquivocation(b"\x01" * (calls.MAX_HEADER_BYTES + 1), b"")
    huge_vote = calls.ReportVoteEquivocation(b"", b"\x00" * 257)
    for call in (huge_header, huge_vote):
        raw = sign(chain, EVE, call, 0).encode()
        with pytest.raises(CodecError, match="length <= "):
            decode_extrinsic(raw)


def test_the_last_validator_is_slashed_and_kept(tmp_path) -> None:
    chain = open_chain(tmp_path / "dev")  # the dev chain: Alice alone validates
    try:
        slot = 0
        nonce = 0

        def block(xts=()):
            nonlocal slot
            slot += 1
            return chain.build_block(list(xts), ALICE, slot=slot)

        first = block().block.header
        xt = sign(chain, BOB, calls.ReportEquivocation(first.encode(), sealed(ALICE, first.slot, b"\x05" * 32, first.parent_hash, first.number, chain.genesis_hash)), nonce)
        staked = balances.get_account(chain.state.overlay(), ALICE.public).staked
        (receipt,) = block([xt]).receipts
        assert receipt.success, receipt.error
        kept = [dict(e.args) for e in receipt.events if (e.pallet, e.name) == ("staking", "ValidatorKept")]
        assert kept == [{"who": "0x" + ALICE.public.hex(), "reason": "the last validator is never removed"}]
        assert balances.get_account(chain.state.overlay(), ALICE.public).staked == staked - staked // 2
        # Never queued, so never disabled nor capped: she authors on, and her next offence is slashed too.
        assert not pol.is_punished(chain.state.overlay(), ALICE.public)
        second = block().block.header
        xt = sign(chain, BOB, calls.ReportEquivocation(second.encode(), sealed(ALICE, second.slot, b"\x06" * 32, second.parent_hash, second.number, chain.genesis_hash)), nonce + 1)
        left = balances.get_account(chain.state.overlay(), ALICE.public).staked
        (receipt,) = block([xt]).receipts
        assert receipt.success, receipt.error
        assert balances.get_account(chain.state.overlay(), ALICE.public).staked == left - left // 2
        while chain.best_number < chain.config.era_length + 1:
            block()
        assert staking.get_validators(chain.state.overlay()) == (ALICE.public,)
    finally:
        chain.db.close()


def test_queue_never_empties_the_set() -> None:
    """Two of two validators offend: the first is queued, the second kept."""
    class Memory(dict):
        def set(self, key, value):
            self[key] = value

        def delete(self, key):
            self.pop(key, None)

    state = Memory()
    staking.VALIDATORS.apply_set(state, (ALICE.public, BOB.public))
    assert staking.apply_queue_removal(state, ALICE.public) == "queued"
    assert staking.apply_queue_removal(state, ALICE.public) == "already_queued"
    assert staking.apply_queue_removal(state, BOB.public) == "last_validator"
    assert staking.apply_queue_removal(state, EVE.public) == "not_validator"
    cfg = load_chain_spec("local").runtime_config
    assert staking.on_initialize(state, cfg.era_length - 1, cfg) == ()
    assert staking.on_initialize(state, cfg.era_length, cfg) == (ALICE.public,)
    assert staking.get_validators(state) == (BOB.public,)


def test_unbonded_funds_stay_slashable_until_they_unlock_then_withdraw(local) -> None:
    """A validator's unbonded stake unlocks after the offence report window (4,096 blocks), not
    one era: an offender that unbonded in the block of its offence withdrew before the report
    (an outside reviewer's finding). Anyone else's unlocks after an era."""
    chain = local.chain
    era = chain.config.era_length
    window = system.BLOCK_HASH_COUNT
    assert local.report(calls.Bond(10 * 10**9), key=BOB).success
    staked = balances.get_account(_state(chain), BOB.public).staked
    free = balances.get_account(_state(chain), BOB.public).free
    receipt = local.report(calls.Unbond(10 * 10**9), key=BOB)  # block #2
    assert receipt.success, receipt.error
    account = balances.get_account(_state(chain), BOB.public)
    assert account.staked == staked - 10 * 10**9 and account.free == free - receipt.fee  # not free yet
    assert staking.get_unlocking(_state(chain), BOB.public) == (staking.UnlockChunk(10 * 10**9, 2 + window),)
    error = local.fails(calls.WithdrawUnbonded(), "staking.NothingToWithdraw", key=BOB)
    assert f"unlock at block {2 + window}" in error
    # Bob equivocates: the slash counts the unlocking funds, takes the stake first, then the chunk.
    first = chain.get_header(chain.get_hash(1)).encode()
    assert chain.get_header(chain.get_hash(1)).author == BOB.public
    receipt = local.report(calls.ReportEquivocation(first, sealed(BOB, 1, b"\x09" * 32, chain.genesis_hash)))
    assert receipt.success, receipt.error
    total = staked
    amount = total * chain.config.slash_fraction_ppm // PPM
    left_staked = staked - 10 * 10**9
    assert balances.get_account(_state(chain), BOB.public).staked == max(left_staked - amount, 0)
    chunk_left = 10 * 10**9 - max(amount - left_staked, 0)
    assert staking.get_unlocking(_state(chain), BOB.public) == (staking.UnlockChunk(chunk_left, 2 + window),)
    # Eve, no validator, unbonds and withdraws an era later.
    assert local.report(calls.Bond(10 * 10**9), key=EVE).success
    assert local.report(calls.Unbond(10 * 10**9), key=EVE).success
    unbonded = chain.best_number
    assert staking.get_unlocking(_state(chain), EVE.public) == (staking.UnlockChunk(10 * 10**9, unbonded + era),)
    local.until(unbonded + era - 1)
    free = balances.get_account(_state(chain), EVE.public).free
    receipt = local.report(calls.WithdrawUnbonded(), key=EVE)  # block unbonded + era
    assert receipt.success, receipt.error
    assert balances.get_account(_state(chain), EVE.public).free == free - receipt.fee + 10 * 10**9
    assert staking.get_unlocking(_state(chain), EVE.public) == ()


# --- report_fraud ----------------------------------------------------------------------------
def _fraud_world(tmp_path, forge: bool):
    """Bob's block #1 (slot 1) on an author chain, with one TRAIN call (6 segments of 10
    steps) whose checkpoint 3 is forged (or honest), and the SEGMENT proof at segment 2 a
    validator would build from the author's openings."""
    from chain.fraud import FAULT_SEGMENT, compute_fraud_proof
    from chain.pallets.training import compute_job_at
    from chain.proofs import TrainingClaim

    author = open_chain(tmp_path / ("forger" if forge else "honest"), load_chain_spec("local"))
    if forge:
        author.trainer = forging_trainer("segment", 3)
    xt = sign(author, CHARLIE, train_call(steps=60, segment=10), 0)
    block = author.build_block([xt], BOB, slot=1).block
    header = block.header
    job, parent_version, _ = compute_job_at(
        author.state_at(header.parent_hash), author.config, xt.call, header.parent_hash, xt.hash(), header.number
    )
    claim = TrainingClaim(0, job, block.body.results[0], xt.call.model, parent_version)
    openings = [author.transcripts.get(block.hash(), 0, j) for j in (2, 3)]
    proof = compute_fraud_proof(block, claim, FAULT_SEGMENT, 2, openings)
    author.db.close()
    return block, job, proof


def test_a_start_or_end_fault_report_is_charged_for_its_check_not_for_a_re_run(local, tmp_path) -> None:
    """A start or end fault re-runs no segment (chain.fraud._compute_fault): its report declares
    the base, the job's data set read and one checkpoint's weights read, not a segment's re-run;
    an end-fault report paid 2 POL for a 1.6 ms check (an outside tester's finding, round 8).
    A segment or divergence fault still declares its re-run."""
    from chain.fraud import FAULT_DIVERGENCE, FAULT_END, FAULT_SEGMENT, FAULT_START

    chain = local.chain
    _, job, proof = _fraud_world(tmp_path, forge=True)
    read = datasets.compute_read_weight(datasets.get_dataset(_state(chain), 0))
    rerun = ml_runtime.train_step_cost(job.spec, job.batch_size) * 10 + ml_runtime.segment_cost(job.spec)
    check = models.compute_weights_read_weight(job.spec)
    assert check < rerun
    for kind, work in ((FAULT_START, check), (FAULT_END, check), (FAULT_SEGMENT, rerun), (FAULT_DIVERGENCE, rerun)):
        call = calls.ReportFraud(msgspec.structs.replace(proof, kind=kind).encode())
        assert pol.compute_report_fraud_weight(_state(chain), call) == pol.REPORT_BASE_WEIGHT + read + work, kind
    # A TRAIN call naming no known model: its dispatch fails at once, so only the base weight,
    # whatever the fault (mutation testing, mut12: ``work or 1``).
    train = msgspec.structs.replace(proof.extrinsic.call, model=999)
    unknown = msgspec.structs.replace(proof, extrinsic=msgspec.structs.replace(proof.extrinsic, call=train))
    for kind in (FAULT_START, FAULT_END, FAULT_SEGMENT, FAULT_DIVERGENCE):
        call = calls.ReportFraud(msgspec.structs.replace(unknown, kind=kind).encode())
        assert pol.compute_report_fraud_weight(_state(chain), call) == pol.REPORT_BASE_WEIGHT, kind


def test_reports_and_settling_calls_are_ordered_by_five_times_their_fee_as_well_as_their_tip(local) -> None:
    """A pool ordered by tip alone put a fraud report declaring nearly a block's weight behind
    one transfer a block tipped 1 unit, from the forger itself, and no block had room for it (an
    outside tester's finding, round 8). An offence report or a settling call
    (runtime.OPERATIONAL_CALLS) now has its tip plus five times its fee for priority (Substrate's
    virtual tip): transfers tipped less are handed to the author after it, and the block is built
    with it first; a transfer tipped more still goes first (a flood of failing reports is outbid,
    not a lane no tip can enter)."""
    from chain.pool import TransactionPool, Validity
    from chain.runtime import OPERATIONAL_CALLS, OPERATIONAL_FEE_MULTIPLIER, SETTLING_CALLS

    chain = local.chain
    assert {calls.ReportEquivocation, calls.ReportVoteEquivocation, calls.ChallengeRound, calls.ClaimBounty} <= OPERATIONAL_CALLS
    assert SETTLING_CALLS <= OPERATIONAL_CALLS and calls.Transfer not in OPERATIONAL_CALLS

    def validate(xt):  # type: ignore[no-untyped-def]
        checked = chain.runtime.verify_extrinsic(_state(chain), xt, len(xt.encode()), chain.best_number + 1, allow_future=True)
        return checked, Validity(checked.priority, checked.account_nonce, 64)

    report = sign(chain, EVE, calls.ReportFraud(b"not a proof"), 0)
    tipped = sign(chain, dev_keypair("Ferdie"), calls.ReportFraud(b"not a proof either"), 0, tip=5)
    checked, _ = validate(report)
    virtual = OPERATIONAL_FEE_MULTIPLIER * checked.fee
    other = validate(tipped)[0]
    assert checked.priority == virtual and other.priority == 5 + OPERATIONAL_FEE_MULTIPLIER * (other.fee - 5)  # (a fee holds its tip)
    below = [sign(chain, BOB, calls.Transfer(DAVE.public, 10**10), n, tip=virtual - 1 - n) for n in range(2)]
    above = sign(chain, CHARLIE, calls.Transfer(DAVE.public, 10**10), 0, tip=other.priority + 1)
    pool = TransactionPool(lambda xt: validate(xt)[1], block_number=chain.best_number)
    for xt in (*below, report, tipped, above):
        assert pool.submit(xt.encode()).status == "ready"
    ready = [xt for _, xt in pool.ready_with_hashes()]
    assert ready == [above, tipped, report, *below]
    built = local.block(ready)
    assert [r.hash for r in built.receipts] == [blake2_256(xt.encode()) for xt in ready]


def test_a_valid_fraud_proof_slashes_the_author_and_removes_it_at_the_next_era(local, tmp_path) -> None:
    from chain.fraud import FAULT_SEGMENT

    chain = local.chain
    block, job, proof = _fraud_world(tmp_path, forge=True)
    raw = proof.encode()
    call = calls.ReportFraud(raw)
    # The weight pays for the one segment the runtime re-runs.
    xt = sign(chain, EVE, call, 0)
    weight = chain.runtime.compute_dispatch_info(_state(chain), xt).weight
    read = datasets.compute_read_weight(datasets.get_dataset(_state(chain), 0))  # the job is rebuilt from the data set
    assert weight == pol.REPORT_BASE_WEIGHT + read + ml_runtime.train_step_cost(job.spec, job.batch_size) * 10 + ml_runtime.segment_cost(job.spec)
    local.fails(call, "SelfReport", key=BOB)  # block #1 of this chain: the forged block was never imported here
    assert _admission(chain, BOB, call).startswith("pol.SelfReport: ")  # nor does a pool take it
    assert not pol.is_fraud_proven(_state(chain), proof)
    before = _before(chain, BOB.public)
    receipt = local.report(call)
    assert receipt.success, receipt.error
    assert receipt.weight == weight
    slash = _expect_slash(chain, receipt, BOB.public, before)
    proven = [dict(e.args) for e in receipt.events if (e.pallet, e.name) == ("pol", "FraudProven")]
    assert proven == [{
        "block_hash": "0x" + block.hash().hex(), "block_number": 1, "offender": "0x" + BOB.public.hex(),
        "kind": FAULT_SEGMENT, "segment": 2, "slashed": slash.amount,
    }]
    assert pol.get_offence(_state(chain), pol.compute_offence_key(pol.OFFENCE_FRAUD, block.hash())).kind == pol.OFFENCE_FRAUD
    assert pol.is_fraud_proven(_state(chain), proof)  # a block of another fork: by its offence
    local.fails(call, "DuplicateReport")
    assert _admission(chain, DAVE, call).startswith("pol.DuplicateReport: ")  # nor does a pool take it
    local.until(chain.config.era_length - 1)
    assert BOB.public in staking.get_validators(_state(chain))
    local.until(chain.config.era_length)
    assert BOB.public not in staking.get_validators(_state(chain))


def test_a_fraud_reports_weight_is_one_segment_at_the_calls_own_batch_size(local, tmp_path) -> None:
    chain = local.chain
    _, job, proof = _fraud_world(tmp_path, forge=True)
    train = proof.extrinsic.call
    for batch in (1, 3):
        call = msgspec.structs.replace(train, batch_size=batch)
        changed = msgspec.structs.replace(proof, extrinsic=msgspec.structs.replace(proof.extrinsic, call=call))
        weight = pol.compute_report_fraud_weight(_state(chain), calls.ReportFraud(changed.encode()))
        read = datasets.compute_read_weight(datasets.get_dataset(_state(chain), train.dataset))
        assert weight == (
            pol.REPORT_BASE_WEIGHT + read + ml_runtime.train_step_cost(job.spec, batch) * min(train.segment_len, train.steps)
            + ml_runtime.segment_cost(job.spec)
        )


def test_a_fraud_is_judged_under_the_config_its_block_ran_with(local, tmp_path) -> None:
    """A referendum that lowers a training limit after a forged block (here max_train_steps
    below the block's 60 steps) must not make its fraud unprovable: the job is rebuilt under
    the config the block ran with (democracy.get_config_of_block), not the current one."""
    import dataclasses

    from chain.config import encode_runtime_config
    from chain.errors import DispatchError
    from chain.pallets import democracy
    from chain.pallets.context import BlockInfo, CallContext

    chain = local.chain
    _, _, proof = _fraud_world(tmp_path, forge=True)
    local.block()  # #1: the forged block's number; its config is the one in force now
    state = chain.state.overlay()
    ran_with = democracy.get_config(state)
    lowered = dataclasses.replace(ran_with, max_train_steps=10)
    state.set(democracy.RUNTIME_CONFIG_KEY, encode_runtime_config(lowered))  # as a referendum enacted at #2 would
    ctx = CallContext(state, EVE.public, 0, bytes(32), 0, BlockInfo(3, bytes(32), ALICE.public, True, None), lowered)  # type: ignore[arg-type]
    ctx.genesis_hash = chain.genesis_hash
    # Without the record of what #1 ran with, the job would be rebuilt under the lowered limit: unprovable.
    with pytest.raises(DispatchError, match=r"steps must be in 1..10, got 60"):
        pol.apply_report_fraud(ctx, calls.ReportFraud(proof.encode()))
    democracy.REPLACED.apply_set(state, encode_runtime_config(ran_with), 2)
    democracy.REPLACED_AT.apply_set(state, (2,))
    pol.apply_report_fraud(ctx, calls.ReportFraud(proof.encode()))
    assert [e.name for e in ctx.events][-1] == "FraudProven"


def test_a_fraud_stays_provable_after_a_referendum_lowers_the_block_weight(local) -> None:
    """A referendum lowers max_block_weight below what the report of a TRAIN forged in the last
    block under the old limit declares (the base, the data set's read, one segment's re-run).
    The report declares a block's weight (runtime.SETTLING_CALLS) and is included, and Bob is
    slashed; before, the pool and every author refused it, "weight ... exceeds a block's limit",
    and the forger kept his stake for good (an outside tester's finding, round 7)."""
    from chain.fraud import FAULT_SEGMENT, compute_fraud_proof
    from chain.pallets import democracy
    from chain.pallets.training import compute_job_at
    from chain.proofs import TrainingClaim

    chain = local.chain
    ferdie = dev_keypair("Ferdie")
    train = train_call(steps=600, batch=64, segment=100)
    new_limit = 12_000_000
    propose = calls.ProposeConfig((calls.ConfigChange("max_block_weight", new_limit),))
    assert local.report(propose, key=ferdie).success
    assert local.report(calls.VoteConfig(0, True, 7 * 10**14)).success
    referendum = democracy.get_referendum(_state(chain), 0)
    local.until(referendum.ends + chain.config.gov_enactment_blocks - 1)  # the next block enacts it, under the old limit
    while local.owner(local.slot + 1) != BOB:
        local.slot += 1  # (empty slots)
    chain.trainer = forging_trainer("segment", 3)
    xt = sign(chain, CHARLIE, train, balances.get_account(_state(chain), CHARLIE.public).nonce)
    forged = local.block([xt]).block
    chain.trainer = None
    assert forged.header.author == BOB.public and chain.config.max_block_weight == new_limit
    header = forged.header
    job, parent_version, _ = compute_job_at(
        chain.state_at(header.parent_hash), chain.config_at(header.parent_hash), xt.call, header.parent_hash, xt.hash(),
        header.number,
    )
    claim = TrainingClaim(0, job, forged.body.results[0], xt.call.model, parent_version)
    proof = compute_fraud_proof(forged, claim, FAULT_SEGMENT, 2, [chain.transcripts.get(forged.hash(), 0, j) for j in (2, 3)])
    call = calls.ReportFraud(proof.encode())
    report = sign(chain, EVE, call, balances.get_account(_state(chain), EVE.public).nonce)
    assert pol.compute_report_fraud_weight(_state(chain), call) > new_limit  # what it declared before
    assert chain.runtime.compute_dispatch_info(_state(chain), report).weight == new_limit
    before = _before(chain, BOB.public)
    receipt = local.report(call)
    assert receipt.success, receipt.error
    _expect_slash(chain, receipt, BOB.public, before)
    assert pol.is_fraud_proven(_state(chain), proof)


def test_only_a_settling_call_heavier_than_a_block_declares_a_blocks_weight(local) -> None:
    """Runtime.compute_dispatch_info caps a call of SETTLING_CALLS at max_block_weight, and
    only such a call and only above it: a report lighter than a block declares its own weight
    (its fee is on it), and a call of another kind heavier than a block declares its own
    weight, which the pool and every author refuse (a mutation run's survivor: ``or`` for
    ``and``, which charged every report a whole block)."""
    import dataclasses

    from chain.runtime import Runtime

    chain = local.chain
    report = sign(chain, EVE, calls.ReportFraud(b""), 0)  # does not decode: the base weight only
    remark = sign(chain, EVE, calls.Remark(b"x" * 50_000), 0)
    light = chain.runtime.compute_dispatch_info(_state(chain), report)
    assert light.weight == pol.REPORT_BASE_WEIGHT < chain.config.max_block_weight
    limit = pol.REPORT_BASE_WEIGHT - 1
    small = Runtime(chain.genesis_hash, dataclasses.replace(chain.config, max_block_weight=limit))
    assert small.compute_dispatch_info(_state(chain), report).weight == limit
    assert small.compute_dispatch_info(_state(chain), remark) == chain.runtime.compute_dispatch_info(_state(chain), remark)
    assert small.compute_dispatch_info(_state(chain), remark).weight == 100_000 + 10 * 50_000 > limit


def test_a_fraud_proof_heavier_than_its_blocks_limit_is_refused_before_any_re_run(local, tmp_path) -> None:
    """A report declares at most a block's weight, so what it makes every node do is bounded
    by the check: one segment of the proven TRAIN with its data set's read heavier than the
    limit of its block's time is refused as "too_heavy" (no block of the chain carried it),
    before the job is rebuilt (which reads the data set), the openings are checked or
    anything re-runs."""
    import dataclasses

    from chain.errors import InvalidFraudProof
    from chain.fraud import verify_fraud_proof

    chain = local.chain
    _, job, proof = _fraud_world(tmp_path, forge=True)
    read = datasets.compute_read_weight(datasets.get_dataset(_state(chain), 0))  # checked before the job reads it
    work = read + ml_runtime.train_cost(job.spec, job.batch_size, job.segment_len, 1)
    config = chain.config
    verify_fraud_proof(chain.genesis_hash, _state(chain), dataclasses.replace(config, max_block_weight=work), proof)
    broken = msgspec.structs.replace(proof, openings=())  # past the check, this fails as bad_opening
    with pytest.raises(InvalidFraudProof) as err:
        verify_fraud_proof(chain.genesis_hash, _state(chain), dataclasses.replace(config, max_block_weight=work - 1), broken)
    assert err.value.reason == "too_heavy"
    assert str(err.value) == (
        f"one segment of extrinsic #0 with its data set's read is {work:,} work units, more than a block #1 could "
        f"hold ({work - 1:,}): no block of this chain carried it"
    )


def test_an_invalid_fraud_proof_fails_with_its_reason_and_costs_its_fee(local, tmp_path) -> None:
    chain = local.chain
    _, _, honest = _fraud_world(tmp_path, forge=False)
    _, _, forged = _fraud_world(tmp_path, forge=True)
    seal = bytearray(forged.header.seal)
    seal[0] ^= 1
    cases = [
        (b"", "malformed"),
        (b"\x01\x90", "malformed"),
        (forged.encode() + b"\x00", "malformed"),
        (honest.encode(), "no_fault"),
        (msgspec.structs.replace(forged, header=msgspec.structs.replace(forged.header, seal=bytes(seal))).encode(), "bad_seal"),
        (msgspec.structs.replace(forged, segment=3).encode(), "bad_opening"),
    ]
    staked = balances.get_account(_state(chain), BOB.public).staked
    for raw, reason in cases:
        error = local.fails(calls.ReportFraud(raw), "InvalidFraudProof")
        assert error.startswith(f"pol.InvalidFraudProof: {reason}: "), error
    assert balances.get_account(_state(chain), BOB.public).staked == staked
    assert staking.PENDING_REMOVAL.get(_state(chain)) == ()


def test_a_fraud_proof_about_a_block_off_this_chain_is_refused_before_it_is_judged(local, tmp_path) -> None:
    """The runtime rebuilds the job from its own state, which is the faulty block's parent
    state only if that parent is on this chain: a block on another fork (here #2 on an author
    chain whose #1 this chain never had) is refused as NotOnThisChain, never judged, so no
    honest author can be framed with another fork's data (system.BlockHash holds the window)."""
    from chain.fraud import FAULT_SEGMENT, compute_fraud_proof
    from chain.pallets import system
    from chain.pallets.training import compute_job_at
    from chain.proofs import TrainingClaim

    author = open_chain(tmp_path / "fork", load_chain_spec("local"))
    author.trainer = forging_trainer("segment", 3)
    author.build_block([sign(author, EVE, calls.Remark(b"fork"), 0)], BOB, slot=1)
    xt = sign(author, CHARLIE, train_call(steps=60, segment=10), 0)
    block = author.build_block([xt], CHARLIE, slot=2).block
    header = block.header
    job, parent_version, _ = compute_job_at(
        author.state_at(header.parent_hash), author.config, xt.call, header.parent_hash, xt.hash(), header.number
    )
    claim = TrainingClaim(0, job, block.body.results[0], xt.call.model, parent_version)
    proof = compute_fraud_proof(block, claim, FAULT_SEGMENT, 2, [author.transcripts.get(block.hash(), 0, j) for j in (2, 3)])
    author.db.close()
    error = local.fails(calls.ReportFraud(proof.encode()), "NotOnThisChain")
    assert error == (
        f"pol.NotOnThisChain: the faulty block: block #2's parent {header.parent_hash.hex()} is not one of this chain's last "
        f"{system.BLOCK_HASH_COUNT} blocks"
    )
    assert system.get_block_hash(_state(local.chain), 0) == local.chain.genesis_hash


def _start_proof(chain: Blockchain, block, index: int, parent_version: int):
    """The start-fault proof of ``block``'s TRAIN extrinsic #``index`` (a block of ``chain``),
    its job rebuilt from model version ``parent_version`` at the block's parent state: the
    proof a reporter claiming that version builds, with the author's opening of entry 0."""
    from chain.fraud import FAULT_START, compute_fraud_proof
    from chain.pallets.training import compute_job_at
    from chain.proofs import TrainingClaim

    header = block.header
    xt = block.body.extrinsics[index]
    pinned = msgspec.structs.replace(xt.call, from_version=parent_version)
    job, _, _ = compute_job_at(
        chain.state_at(header.parent_hash), chain.config, pinned, header.parent_hash, xt.hash(), header.number
    )
    (result,) = (r for r in block.body.results if r.extrinsic_index == index)
    claim = TrainingClaim(index, job, result, xt.call.model, parent_version)
    return compute_fraud_proof(block, claim, FAULT_START, 0, [chain.transcripts.get(block.hash(), index, 0)])


def test_two_trains_of_one_model_in_a_block_both_train_the_version_before_it_and_frame_nobody(local, tmp_path) -> None:
    """tester17's H1 (round 12): one honest block held two TRAIN calls of model 0, both naming
    no version; the second trained version 1, made by the first in the same block. A start-fault
    proof of the second call naming version 0 (the latest before the block) was accepted at the
    parent state (version 1 is not there) and by pol.report_fraud (version 1's successor check
    passed ``later.block < number`` for a version made in the block): checkpoint 0 (version 1's
    weights) "was not the on-chain weights" of version 0, so the honest author was slashed and
    queued for removal, its version marked forged, and every node that heard the proof dropped
    the honest block. Which version such a call trained depended on its place in the block,
    which no proof shows. A TRAIN naming no version now trains the model's latest version made
    before its block (models.compute_latest_before), a job the parent state alone fixes: both
    calls train version 0, the proof shows no fault anywhere, and a proof naming version 1 (made
    in the block) is refused."""
    from chain.errors import InvalidFraudProof
    from chain.fraud import verify_fraud_proof
    from chain.proofs import FullReexecution
    from chain.transcripts import LocalSource

    chain = local.chain
    call = train_call(steps=20, segment=10)
    xts = [sign(chain, BOB, call, 0), sign(chain, CHARLIE, call, 0)]
    built = local.block(xts)
    block, author = built.block, built.block.header.author
    assert [r.success for r in built.receipts] == [True, True], [r.error for r in built.receipts]
    parent = block.header.parent_hash
    auditor = open_chain(tmp_path / "auditor", load_chain_spec("local"), verifier=FullReexecution())
    auditor.import_block(block, LocalSource(chain.transcripts))  # the author and every importer agree on the jobs
    assert auditor.best_hash == block.hash()

    def refused(state, proof) -> str:
        with pytest.raises(InvalidFraudProof) as caught:
            verify_fraud_proof(chain.genesis_hash, state, chain.config, proof)
        return caught.value.reason

    framing = _start_proof(chain, block, 1, 0)
    first = _start_proof(chain, block, 0, 0)
    in_block = msgspec.structs.replace(framing, parent_version=1)
    root = chain.state.root()
    for state in (chain.state_at(parent), auditor.state_at(parent), _state(chain), auditor.state_at(block.hash())):
        assert refused(state, framing) == "no_fault"
        assert refused(state, first) == "no_fault"
    # Version 1 is unknown at the parent state (the job cannot be rebuilt); later, it was made in the block itself.
    assert refused(chain.state_at(parent), in_block) == "unknown_job"
    assert refused(_state(chain), in_block) == "bad_parent_version"
    assert chain.state.root() == root
    staked = balances.get_account(_state(chain), author).staked
    for proof in (framing, in_block):
        error = local.fails(calls.ReportFraud(proof.encode()), "InvalidFraudProof")
        reason = "no_fault" if proof is framing else "bad_parent_version"
        assert error.startswith(f"pol.InvalidFraudProof: {reason}: "), error
    state = _state(chain)
    assert balances.get_account(state, author).staked == staked
    assert staking.PENDING_REMOVAL.get(state) == ()
    assert not models.is_version_forged(state, 0, 1) and not models.is_version_forged(state, 0, 2)
    # The lineage: both versions were made in block #1 from version 0.
    made = [models.VERSIONS.get(state, 0, v) for v in (1, 2)]
    assert [(m.parent, m.block) for m in made] == [(0, 1), (0, 1)]
    trained = [dict(next(e for e in r.events if e.name == "ModelTrained").args) for r in built.receipts]
    assert [(e["version"], e["parent"]) for e in trained] == [(1, 0), (2, 0)]
    auditor.db.close()


def test_the_latest_version_before_a_block_is_version_0_for_a_model_registered_in_it(local) -> None:
    """models.compute_latest_before walks down from the latest version to the first made before
    block #number, and stops at version 0 whatever block made it: a TRAIN naming no version in
    the block that registered its model trains version 0 (there is no version -1)."""
    state = _state(local.chain)
    spec = models.decode_spec(models.get_model(state, 0).spec)
    model = models.apply_new_model(state, ALICE.public, "fresh", spec, bytes(32), 5, 1 << 18)
    weights = models.get_weights(state, model, 0)
    assert models.compute_latest_before(state, model, models.get_model(state, model), 5) == 0
    models.apply_new_version(state, model, 0, weights, ALICE.public, 5, None)
    models.apply_new_version(state, model, 1, weights, ALICE.public, 7, None)
    info = models.get_model(state, model)
    assert [models.compute_latest_before(state, model, info, n) for n in (5, 6, 7, 8)] == [0, 1, 1, 2]


def test_a_forged_start_of_the_second_train_of_a_model_in_a_block_is_still_proven(local, tmp_path) -> None:
    """The other side of tester17's H1: in a block with two TRAIN calls of model 0 naming no
    version, the second call's checkpoint 0 forged (not version 0's weights, which it trains)
    is a start fault proven against version 0, at the parent state and by pol.report_fraud,
    which slashes the author; the honest first call's proof shows no fault."""
    from chain.errors import InvalidFraudProof
    from chain.fraud import FAULT_START, verify_fraud_proof

    jobs = []

    def trainer(job: ml_runtime.TrainingJob) -> ml_runtime.JobResult:
        jobs.append(job)
        outcome = ml_runtime.run_job(job)
        return forge_outcome(outcome, "start", 0) if len(jobs) == 2 else outcome

    forger = open_chain(tmp_path / "forger", load_chain_spec("local"), trainer=trainer)
    call = train_call(steps=20, segment=10)
    built = forger.build_block([sign(forger, CHARLIE, call, 0), sign(forger, DAVE, call, 0)], BOB, slot=1)
    block = built.block
    assert [r.success for r in built.receipts] == [True, True], [r.error for r in built.receipts]
    assert len(jobs) == 2 and all(np.array_equal(job.weights, models.get_weights(_state(local.chain), 0, 0)) for job in jobs)
    forged = _start_proof(forger, block, 1, 0)
    honest = _start_proof(forger, block, 0, 0)
    parent_state = forger.state_at(block.header.parent_hash)
    verify_fraud_proof(forger.genesis_hash, parent_state, forger.config, forged)
    with pytest.raises(InvalidFraudProof) as caught:
        verify_fraud_proof(forger.genesis_hash, parent_state, forger.config, honest)
    assert caught.value.reason == "no_fault"
    forger.db.close()
    chain = local.chain
    error = local.fails(calls.ReportFraud(honest.encode()), "InvalidFraudProof")
    assert error.startswith("pol.InvalidFraudProof: no_fault: "), error
    before = _before(chain, BOB.public)
    receipt = local.report(calls.ReportFraud(forged.encode()))
    assert receipt.success, receipt.error
    _expect_slash(chain, receipt, BOB.public, before)
    proven = [dict(e.args) for e in receipt.events if (e.pallet, e.name) == ("pol", "FraudProven")]
    assert [(p["block_hash"], p["kind"], p["segment"]) for p in proven] == [("0x" + block.hash().hex(), FAULT_START, 0)]


def test_a_block_that_lost_a_fork_race_cannot_frame_its_author_with_a_version_made_in_it(local, tmp_path, monkeypatch) -> None:
    """An outside tester's P1 (round 14). Block F (#1) held TRAIN1 (model 0, making version 1)
    and TRAIN2 naming ``from_version=1``, the version TRAIN1 made in F. F lost the fork race:
    this chain's #1 is another block, and TRAIN1 went into its #2, under another seed, so this
    chain's version 1 has other weights. A start-fault proof of F's TRAIN2 built from F's own
    honest opening of entry 0 was then judged against this chain's version 1: proven, and F's
    author slashed by half and queued for removal. A TRAIN naming a version made in its own
    block now fails (training.VersionTooNew), so F, built by a runtime without the rule, is
    refused on import, and the proof is refused as "unknown_job" (the version was made at F's
    height or after it), here and at F's parent state; no one is slashed."""
    from chain.errors import BlockError, InvalidFraudProof
    from chain.fraud import FAULT_START, compute_fraud_proof, verify_fraud_proof
    from chain.pallets import training
    from chain.pallets.training import compute_job_at
    from chain.proofs import TrainingClaim
    from chain.transcripts import LocalSource

    chain = local.chain
    side = Local(open_chain(tmp_path / "side", load_chain_spec("local")))
    first = sign(chain, CHARLIE, train_call(steps=20, segment=10), 0)
    second = sign(chain, DAVE, msgspec.structs.replace(train_call(steps=20, segment=10), from_version=1), 0)
    with monkeypatch.context() as m:  # the runtime before the rule: F's author trained both, honestly
        m.setattr(training, "_verify_made_before", lambda *args: None)
        built = side.block([first, second])
        fork, header = built.block, built.block.header
        job, _, _ = compute_job_at(side.chain.state_at(header.parent_hash), chain.config, second.call, header.parent_hash,
                                   second.hash(), header.number, read_weights=False)
    assert [r.success for r in built.receipts] == [True, True]
    local.slot = 1
    local.block()  # this chain's #1, in the next slot
    assert local.block([first]).receipts[0].success  # TRAIN1 again, in #2: this chain's version 1
    assert not np.array_equal(models.get_weights(_state(chain), 0, 1), models.get_weights(_state(side.chain), 0, 1))
    root = chain.state.root()
    with pytest.raises(BlockError, match="state root mismatch"):  # under the rule TRAIN2 fails in F
        chain.import_block(fork, LocalSource(side.chain.transcripts))
    assert chain.state.root() == root and not chain.has_block(fork.hash())
    claim = TrainingClaim(1, job, next(r for r in fork.body.results if r.extrinsic_index == 1), 0, 1)
    proof = compute_fraud_proof(fork, claim, FAULT_START, 0, [side.chain.transcripts.get(fork.hash(), 1, 0)])
    for state, why in ((chain.state_at(header.parent_hash), "UnknownVersion: model 0 has no version 1"),
                       (_state(chain), "VersionTooNew: version 1 of model 0 was made in block #2")):
        with pytest.raises(InvalidFraudProof, match=why) as caught:
            verify_fraud_proof(chain.genesis_hash, state, chain.config, proof)
        assert caught.value.reason == "unknown_job"
    staked = balances.get_account(_state(chain), header.author).staked
    error = local.fails(calls.ReportFraud(proof.encode()), "InvalidFraudProof")
    assert error.startswith("pol.InvalidFraudProof: unknown_job: the job cannot be rebuilt: VersionTooNew: "), error
    state = _state(chain)
    assert balances.get_account(state, header.author).staked == staked and staking.PENDING_REMOVAL.get(state) == ()
    side.chain.db.close()
