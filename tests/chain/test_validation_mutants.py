"""The transaction validation path at its edges: the tests that kill what mutation testing of
chain/runtime.py (verify_extrinsic, _verify_extrinsic, apply_extrinsic, apply_fee,
apply_transfers), chain/extrinsic.py and chain/header.py found unchecked.

Every refusal is asserted by its reason and message, on a real chain (LevelDB, ed25519), with
the state root unchanged. The bulk path's edges are in tests/chain/test_transfer_run.py.

Mutation testing (README, Mutation testing; 2026-11-29), run by name:

    mutmut run "chain.header*" "chain.extrinsic*" "chain.runtime.xǁRuntimeǁ_verify_extrinsic*" \
        "chain.runtime.xǁRuntimeǁverify_extrinsic*" "chain.runtime.xǁRuntimeǁapply_*" \
        "chain.runtime.xǁRuntimeǁcompute_fee*" "chain.runtime.xǁRuntimeǁcompute_dispatch_info*" \
        "chain.runtime.x__credit*" --max-children 1

chain/runtime.py (those functions): 559 mutants, 538 killed, 21 survive, each equivalent (below),
no timeout; chain/extrinsic.py 81 of 81 killed; chain/header.py 46 of 47, the survivor
equivalent. Before the tests of this module and the new ones in test_transfer_run.py, 71
mutants survived that were not equivalent (19 in a first, partial run, 52 more in the second
run; each killed by a test here or there): an era's first block, a transcript, a
block's weight and length and a fee at exactly their limits, verify_extrinsic's and
apply_extrinsic's defaults, a payload of exactly 256 bytes, a failed extrinsic's receipt, the
validators' share of a transfer's fee, the author's fees seen mid-run. In apply_transfers,
``index = start`` (never read: the loop or its ``else`` binds it) and its ``{} if author in
current`` (the accounts read are left out anyway) were dead code, deleted. Two mutants of
apply_extrinsic (CallContext without the genesis hash) are killed by
tests/chain/test_rewards_votes.py, in the selection.

The survivors, each equivalent:

chain/runtime.py, apply_transfers (its outcome is pinned by apply_both_ways: the same bits as
apply_extrinsic; what it does not apply goes to apply_extrinsic, so only *which* transfers it
takes is observable, through the indexes applied one by one):

- ``weight > config.max_block_weight`` as ``>=``: a transfer's 100,000 units are below the
  max_block_weight of any valid config (RuntimeConfig.compute_problems: a block has room for
  the 1,000,000 units of register_model), so the two never differ.
- ``length > max_length`` as ``>=``: a transfer's encoding (fixed-size fields, under 200 bytes)
  is far below max_extrinsic_length of any valid config (room for 64 KiB of extrinsics).
- ``fees and (signer == author or dest == author)`` as ``fees or (...)``: the author's fees
  are then folded into its account at every transfer instead of before each read of it; the
  sum is the same and every read sees it either way.
- ``ahead * 4`` as ``ahead * 5``: only the size of the read-ahead batches (peeks, not base
  reads) changes, never what is read or applied.
- ``None`` as ``""`` as the values of the ``wanted`` and ``written`` dicts: only their keys
  (and key order) are used.
- ``strict=True`` dropped or made False/None in the three ``zip`` calls: the lists zipped are
  equal in length by construction (compute_keys gives one key per account, decode_many one
  value per key, the keys are those of ``written``); strict only asserts it.

chain/runtime.py, apply_fee and apply_extrinsic (the only handler that reports what it used,
chain.pallets.training.apply_train, reports both the weight and the result bytes, and only
when it fails; a call that succeeds is charged as declared):

- ``post.actual_weight is None`` and ``post.actual_result_length is None`` made always false,
  and ``DispatchInfo`` built without the result length (default 0): the reported result
  length is always 0 and neither field is ever None in the reduced branch.
- ``checked.fee > fee`` as ``>=``: a refund of 0 rewrites the sender's account with the value
  it already holds (written just before, with the nonce bump): no state changes.
- apply_extrinsic's second apply_fee (a call that succeeded) given ``None`` for the length: it
  is used only to recompute a reduced fee, and a successful call is charged as declared.
- apply_extrinsic passing ``None`` for ``allow_future`` instead of False: both falsy.

chain/header.py:

- compute_slot_digest packing ``"<q"`` for ``"<Q"``: a slot is a U64, at most 2^63-1
  (chain.codec), which both formats pack to the same 8 bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import msgspec
import pytest
from chainkit import ALICE, BOB, CHARLIE, dev_spec, open_chain, sign, train_call

import ml_runtime
from chain import calls
from chain.block import BLOCK_OVERHEAD
from chain.blockchain import Blockchain
from chain.codec import MAX_BALANCE, encode
from chain.crypto import blake2_256
from chain.errors import BlockError, CodecError, FutureTransaction, InvalidTransaction
from chain.extrinsic import (
    IMMORTAL,
    MAX_EXTRINSIC_SIZE,
    Era,
    Extrinsic,
    SigningPayload,
    compute_signing_message,
    decode_extrinsic,
    sign_extrinsic,
)
from chain.header import (
    DIGEST_CONSENSUS,
    DIGEST_PRE_RUNTIME,
    POL_ENGINE,
    DigestItem,
    Header,
    PolCommitment,
    compute_pol_digest,
)
from chain.pallets import balances, rewards
from chain.pallets.context import BlockInfo, Event
from chain.pallets.training import TRAIN_BASE_WEIGHT
from chain.runtime import TRANSFER_INFO, CheckedExtrinsic, DispatchInfo, Receipt, Runtime


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blockchain]:
    node = open_chain(tmp_path_factory.mktemp("validation"))
    yield node
    node.db.close()


def _verify(chain: Blockchain, xt, *, runtime: Runtime | None = None, number: int | None = None, **kw) -> CheckedExtrinsic:
    """The pool's admission check of ``xt`` on the best state, for block ``number`` (the next)."""
    runtime = runtime or chain.runtime
    number = chain.best_number + 1 if number is None else number
    return runtime.verify_extrinsic(chain.state.overlay(), xt, len(xt.encode()), number, **kw)


def _refused(chain: Blockchain, xt, reason: str, message: str, **kw) -> InvalidTransaction:
    """``xt`` refused with ``reason`` and a message matching ``message``; nothing stored changed."""
    root = chain.state.root()
    with pytest.raises(InvalidTransaction, match=message) as caught:
        _verify(chain, xt, **kw)
    assert caught.value.reason == reason, caught.value
    assert chain.state.root() == root
    return caught.value


# --- verify_extrinsic's arguments ------------------------------------------------------------
def test_the_signature_is_checked_unless_the_caller_says_it_was(chain: Blockchain) -> None:
    good = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0)
    other = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6 + 1), 0)
    forged = msgspec.structs.replace(good, signature=other.signature)  # ALICE's, over another call
    _refused(chain, forged, "bad_proof", "signature")  # by default
    _refused(chain, forged, "bad_proof", "signature", check_signature=True)
    # The block importer checks signatures in bulk beforehand (chain.signatures) and says so.
    assert _verify(chain, forged, check_signature=False).account_nonce == 0


def test_a_future_nonce_is_for_the_pool_only(chain: Blockchain) -> None:
    ahead = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 3, tip=5)
    root = chain.state.root()
    with pytest.raises(FutureTransaction, match="nonce 3 is ahead of the account nonce 0"):
        _verify(chain, ahead)  # by default: as in a block
    with pytest.raises(FutureTransaction, match="nonce 3 is ahead of the account nonce 0"):
        _verify(chain, ahead, allow_future=False)
    checked = _verify(chain, ahead, allow_future=True)
    assert (checked.priority, checked.account_nonce) == (5, 0)
    assert checked.fee == chain.runtime.compute_fee(checked.info, len(ahead.encode()), 5)
    assert chain.state.root() == root


def test_a_used_nonce_is_stale(tmp_path) -> None:
    node = open_chain(tmp_path / "stale")
    node.build_block([sign(node, ALICE, calls.Remark(b"0"), 0), sign(node, ALICE, calls.Remark(b"1"), 1)], ALICE, slot=1)
    for nonce in (0, 1):
        _refused(node, sign(node, ALICE, calls.Remark(b"again"), nonce), "stale",
                 f"^nonce {nonce} is already used \\(account nonce is 2\\)$", allow_future=True)
    assert _verify(node, sign(node, ALICE, calls.Remark(b"next"), 2)).account_nonce == 2
    node.db.close()


@pytest.mark.parametrize(("offset", "alive"), [(-1, False), (0, True), (3, True), (4, False)])
def test_a_mortal_era_covers_its_birth_and_period_and_nothing_else(chain: Blockchain, offset: int, alive: bool) -> None:
    # Era(birth=10, period=4): blocks 10, 11, 12, 13.
    xt = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0, era=Era(10, 4))
    assert xt.era.is_alive(10 + offset) is alive
    if alive:
        assert _verify(chain, xt, number=10 + offset).account_nonce == 0
    elif offset < 0:  # not begun: valid later (Substrate's Future), not outdated
        _refused(chain, xt, "future", f"^era 10\\+4 starts at block 10, after block {10 + offset}$", number=10 + offset)
    else:
        _refused(chain, xt, "stale", f"^era 10\\+4 does not cover block {10 + offset}$", number=10 + offset)


def test_an_immortal_era_covers_every_block(chain: Blockchain) -> None:
    assert all(Era(0, 0).is_alive(n) for n in (0, 1, 2**32 - 1))
    assert Era(7, 0).is_alive(0)  # period 0 is immortal whatever the birth


def test_a_transcript_of_exactly_max_transcript_bytes_is_admitted(chain: Blockchain) -> None:
    xt = sign(chain, ALICE, train_call(), 0)
    info = chain.runtime.compute_dispatch_info(chain.state.overlay(), xt)
    assert info.transcript_bytes > 0
    exact = Runtime(chain.genesis_hash, dataclasses.replace(chain.config, max_transcript_bytes=info.transcript_bytes))
    assert _verify(chain, xt, runtime=exact).info == info
    under = Runtime(chain.genesis_hash, dataclasses.replace(chain.config, max_transcript_bytes=info.transcript_bytes - 1))
    _refused(
        chain, xt, "exhausts_resources",
        f"^the training job's transcript of {info.transcript_bytes:,} bytes exceeds max_transcript_bytes "
        f"\\({info.transcript_bytes - 1:,}\\): no author stores and serves it$",
        runtime=under,
    )


def test_a_block_whose_transcripts_sum_to_exactly_max_transcript_bytes_is_admitted(chain: Blockchain) -> None:
    """The block's bound (chain.runtime.apply_extrinsic): the second call's checkpoints reach
    it exactly and are admitted; one byte less and that call makes the block invalid."""
    xts = [sign(chain, ALICE, train_call(), 0), sign(chain, BOB, train_call(), 0)]
    per_call = chain.runtime.compute_dispatch_info(chain.state.overlay(), xts[0]).transcript_bytes
    for limit, admitted in ((2 * per_call, True), (2 * per_call - 1, False)):
        runtime = Runtime(chain.genesis_hash, dataclasses.replace(chain.config, max_transcript_bytes=limit))
        overlay = chain.state.overlay()
        info = BlockInfo(1, chain.best_hash, ALICE.public, True, chain.trainer)
        raws = [xt.encode() for xt in xts]
        assert runtime.apply_extrinsic(overlay, info, 0, xts[0], blake2_256(raws[0]), len(raws[0])).success
        assert info.transcript_bytes == per_call
        if admitted:
            assert runtime.apply_extrinsic(overlay, info, 1, xts[1], blake2_256(raws[1]), len(raws[1])).success
            assert info.transcript_bytes == limit
            continue
        with pytest.raises(InvalidTransaction, match=(
            f"^the block's TRAIN calls declare {2 * per_call:,} bytes of checkpoints with this one; "
            f"a block's author stores at most max_transcript_bytes \\({limit:,}\\)$"
        )) as caught:
            runtime.apply_extrinsic(overlay, info, 1, xts[1], blake2_256(raws[1]), len(raws[1]))
        assert caught.value.reason == "exhausts_resources"


def test_a_train_call_that_fails_counts_the_checkpoints_it_made_not_those_it_declared(chain: Blockchain) -> None:
    """Its declared checkpoints must fit beside what the calls before it made, and then only
    what it made counts (none: it failed), as for its result bytes and weight. Counting what
    calls declared let one that declared a block's worth and failed at once keep every other
    call out for a fraction of a POL (an outside tester's finding)."""
    failing = sign(chain, ALICE, calls.Train(0, 9, 30, 8, calls.compute_f32_bits(0.1), 0, 10), 0)  # no data set 9
    overlay = chain.state.overlay()
    declared = chain.runtime.compute_dispatch_info(overlay, failing).transcript_bytes
    assert declared > 0
    info = BlockInfo(1, chain.best_hash, ALICE.public, True, chain.trainer)
    raw = failing.encode()
    receipt = chain.runtime.apply_extrinsic(overlay, info, 0, failing, blake2_256(raw), len(raw))
    assert not receipt.success and "UnknownDataset" in (receipt.error or "")
    assert (info.transcript_bytes, info.result_length) == (0, 0)


# --- chain/extrinsic.py ----------------------------------------------------------------------
def test_an_extrinsic_of_exactly_the_size_limit_is_decoded_not_refused_as_oversize() -> None:
    # MAX_EXTRINSIC_SIZE bytes are decoded (here: malformed, refused by the codec); one more
    # byte is refused before decoding.
    with pytest.raises(CodecError):
        decode_extrinsic(b"\x01" + bytes(MAX_EXTRINSIC_SIZE - 1))
    with pytest.raises(InvalidTransaction, match=f"^extrinsic is {MAX_EXTRINSIC_SIZE + 1} bytes, the limit is {MAX_EXTRINSIC_SIZE}$") as caught:
        decode_extrinsic(b"\x01" + bytes(MAX_EXTRINSIC_SIZE))
    assert caught.value.reason == "exhausts_resources"


# --- chain/header.py -------------------------------------------------------------------------
COMMITMENT = PolCommitment(bytes(range(32)), 7, 9)


def _header(*digest: DigestItem) -> Header:
    return Header(bytes(32), 5, bytes(32), bytes(32), 1, ALICE.public, digest)


def test_the_pol_commitment_is_the_one_consensus_item_of_engine_pol() -> None:
    # Another engine's consensus item and a pre-runtime item tagged POL_ are not commitments.
    others = (DigestItem(DIGEST_CONSENSUS, b"FRNK", b"\x01"), DigestItem(DIGEST_PRE_RUNTIME, POL_ENGINE, b"\x02"))
    assert _header(others[0], compute_pol_digest(COMMITMENT), others[1]).get_pol_commitment() == COMMITMENT


@pytest.mark.parametrize("count", [0, 2])
def test_a_header_without_exactly_one_pol_commitment_is_refused_by_count(count: int) -> None:
    header = _header(*[compute_pol_digest(COMMITMENT)] * count, DigestItem(DIGEST_CONSENSUS, b"FRNK", b""))
    with pytest.raises(BlockError, match=f"^header #5 has {count} POL_ commitments, expected 1$"):
        header.get_pol_commitment()


# --- _verify_extrinsic's bounds at their edges ------------------------------------------------
def _with(chain: Blockchain, **changes: int) -> Runtime:
    """The chain's runtime with ``changes`` to its config (limits a chain spec could not set are
    fine here: only the comparison at the edge is under test)."""
    return Runtime(chain.genesis_hash, dataclasses.replace(chain.config, **changes))


def test_a_call_of_exactly_a_blocks_weight_is_admitted(chain: Blockchain) -> None:
    xt = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0)
    weight = TRANSFER_INFO.weight
    assert _verify(chain, xt, runtime=_with(chain, max_block_weight=weight)).info.weight == weight
    _refused(chain, xt, "exhausts_resources", f"^weight {weight} exceeds a block's limit of {weight - 1}$",
             runtime=_with(chain, max_block_weight=weight - 1))


def test_an_extrinsic_that_exactly_fills_a_block_is_admitted(chain: Blockchain) -> None:
    xt = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0)
    length = len(xt.encode())
    limit = BLOCK_OVERHEAD + length
    assert _verify(chain, xt, runtime=_with(chain, max_block_length=limit)).account_nonce == 0
    _refused(chain, xt, "exhausts_resources",
             f"^the extrinsic's {length} bytes cannot fit in a block of {limit - 1} bytes \\({length - 1} after the header\\)$",
             runtime=_with(chain, max_block_length=limit - 1))


def test_a_training_result_counts_in_the_extrinsics_length(chain: Blockchain) -> None:
    xt = sign(chain, ALICE, train_call(), 0)
    length, result = len(xt.encode()), chain.runtime.compute_dispatch_info(chain.state.overlay(), xt).result_length
    assert result > 0
    limit = BLOCK_OVERHEAD + length + result
    assert _verify(chain, xt, runtime=_with(chain, max_block_length=limit)).info.result_length == result
    _refused(chain, xt, "exhausts_resources",
             f"^the extrinsic's {length} bytes and its training result of {result} bytes cannot fit in a block "
             f"of {limit - 1} bytes \\({length + result - 1} after the header\\)$",
             runtime=_with(chain, max_block_length=limit - 1))


def test_a_fee_of_exactly_the_free_balance_is_payable_and_one_more_is_not(chain: Blockchain) -> None:
    free = balances.get_account(chain.state.overlay(), ALICE.public).free
    probe = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0, tip=free // 2)
    tip = free - chain.runtime.compute_fee(TRANSFER_INFO, len(probe.encode()), 0)
    exact = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0, tip=tip)
    assert len(exact.encode()) == len(probe.encode())
    assert _verify(chain, exact).fee == free
    over = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0, tip=tip + 1)
    _refused(chain, over, "payment", f"^free balance {free} cannot pay the fee {free + 1}$")


def test_a_fee_of_exactly_the_largest_balance_is_refused_as_unpaid_not_as_too_large(chain: Blockchain) -> None:
    probe = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0, tip=MAX_BALANCE // 2)
    base = chain.runtime.compute_fee(TRANSFER_INFO, len(probe.encode()), 0)
    exact = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0, tip=MAX_BALANCE - base)
    assert len(exact.encode()) == len(probe.encode())
    free = balances.get_account(chain.state.overlay(), ALICE.public).free
    _refused(chain, exact, "payment", f"^free balance {free} cannot pay the fee {MAX_BALANCE}$")
    over = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0, tip=MAX_BALANCE - base + 1)
    _refused(chain, over, "payment",
             f"^tip {MAX_BALANCE - base + 1}: the fee, {base} plus the tip, exceeds the largest balance {MAX_BALANCE}$")


# --- the signing payload --------------------------------------------------------------------
@pytest.mark.parametrize("size", [256, 257])
def test_a_payload_of_256_bytes_is_signed_as_it_is_and_a_longer_one_through_its_hash(chain: Blockchain, size: int) -> None:
    """Substrate's rule, which wallets follow: a signing payload longer than 256 bytes is signed
    through its blake2_256 hash; up to 256 bytes, the payload itself."""
    spec = chain.runtime.spec_version

    def payload(n: int) -> SigningPayload:
        return SigningPayload(calls.Remark(b"r" * n), 0, 0, IMMORTAL, chain.genesis_hash, spec)

    n = next(n for n in range(300) if len(encode(payload(n))) == size)
    raw = encode(payload(n))
    message = raw if size == 256 else blake2_256(raw)
    assert compute_signing_message(payload(n)) == message
    xt = Extrinsic(ALICE.public, ALICE.sign(message), 0, 0, IMMORTAL, calls.Remark(b"r" * n))  # signed as a wallet does
    assert _verify(chain, xt).account_nonce == 0


def test_sign_extrinsic_defaults_to_no_tip_and_an_immortal_era(chain: Blockchain) -> None:
    xt = sign_extrinsic(ALICE, calls.Remark(b"x"), nonce=0, genesis_hash=chain.genesis_hash, spec_version=chain.runtime.spec_version)
    assert (xt.tip, xt.era) == (0, IMMORTAL)
    assert _verify(chain, xt).priority == 0


@pytest.mark.parametrize("field", ["genesis_hash", "spec_version", "nonce", "tip", "era"])
def test_a_signature_covers_the_chain_the_spec_and_every_field(chain: Blockchain, field: str) -> None:
    spec, call = chain.runtime.spec_version, calls.Transfer(BOB.public, 10**6)
    signed = {"genesis_hash": chain.genesis_hash, "spec_version": spec, "nonce": 0, "tip": 0, "era": IMMORTAL}
    other = {"genesis_hash": blake2_256(b"another chain"), "spec_version": spec + 1, "nonce": 1, "tip": 1, "era": Era(0, 64)}
    signed[field] = other[field]
    message = compute_signing_message(SigningPayload(call, signed["nonce"], signed["tip"], signed["era"], signed["genesis_hash"], signed["spec_version"]))
    xt = Extrinsic(ALICE.public, ALICE.sign(message), 0, 0, IMMORTAL, call)
    _refused(chain, xt, "bad_proof", f"^bad ed25519 signature for {ALICE.address}: ")


# --- apply_fee: the validators' share is of training fees only --------------------------------
def test_the_validators_share_is_taken_from_training_fees_only(tmp_path) -> None:
    spec = dev_spec()
    spec = dataclasses.replace(spec, runtime_config=dataclasses.replace(spec.runtime_config, validator_fee_share_ppm=250_000))
    node = open_chain(tmp_path / "shares", spec)
    state = node.state.overlay()
    transfer = sign(node, BOB, calls.Transfer(CHARLIE.public, 10**9), 0)
    train = sign(node, CHARLIE, calls.Train(0, 9, 1000, 64, calls.compute_f32_bits(0.5), 0, 100), 0)  # data set 9: none
    alice, charlie = (balances.get_account(state, k.public).free for k in (ALICE, CHARLIE))
    built = node.build_block([transfer, train], ALICE, slot=1)
    moved, failed = built.receipts
    assert moved.success and not failed.success and "UnknownDataset" in (failed.error or "")
    assert moved.fee == node.runtime.compute_fee(TRANSFER_INFO, len(transfer.encode()), 0)
    # The failed call is charged its base weight and no result (training.apply_train's post info).
    assert failed.fee == node.runtime.compute_fee(DispatchInfo(TRAIN_BASE_WEIGHT), len(train.encode()), 0)
    share = failed.fee * 250_000 // 1_000_000
    after = node.state.overlay()
    assert balances.get_account(after, rewards.VOTER_POT_ACCOUNT).free == share > 0
    assert balances.get_account(after, ALICE.public).free == alice + moved.fee + failed.fee - share
    assert balances.get_account(after, CHARLIE.public).free == charlie + 10**9 - failed.fee
    node.db.close()


# --- apply_extrinsic ---------------------------------------------------------------------------
def test_apply_extrinsic_checks_the_signature_unless_told_it_was_checked(chain: Blockchain) -> None:
    good = sign(chain, ALICE, calls.Transfer(BOB.public, 10**6), 0)
    forged = msgspec.structs.replace(good, signature=sign(chain, ALICE, calls.Transfer(BOB.public, 10**6 + 1), 0).signature)
    block = BlockInfo(chain.best_number + 1, chain.best_hash, BOB.public, False, ml_runtime.run_job)
    for kw in ({}, {"check_signature": True}):
        overlay = chain.state.overlay()
        with pytest.raises(InvalidTransaction, match=f"^bad ed25519 signature for {ALICE.address}: ") as caught:
            chain.runtime.apply_extrinsic(overlay, block, 0, forged, forged.hash(), len(forged.encode()), **kw)
        assert caught.value.reason == "bad_proof" and not overlay.changes()
    overlay = chain.state.overlay()
    receipt = chain.runtime.apply_extrinsic(overlay, block, 0, forged, forged.hash(), len(forged.encode()), check_signature=False)
    assert receipt.success  # the importer checked the block's signatures in bulk beforehand


def test_a_failed_extrinsic_pays_and_its_receipt_says_why(tmp_path) -> None:
    node = open_chain(tmp_path / "failed")
    xt = sign(node, BOB, calls.Transfer(CHARLIE.public, MAX_BALANCE), 0)
    bob = balances.get_account(node.state.overlay(), BOB.public)
    built = node.build_block([sign(node, ALICE, calls.Remark(b"first"), 0), xt], ALICE, slot=1)
    fee = node.runtime.compute_fee(TRANSFER_INFO, len(xt.encode()), 0)
    message = f"free balance {bob.free - fee} is less than {MAX_BALANCE}"
    failed = Event("system", "ExtrinsicFailed", (("module", "balances"), ("error", "InsufficientBalance"), ("message", message)))
    assert built.receipts[1] == Receipt(1, xt.hash(), False, fee, TRANSFER_INFO.weight, f"balances.InsufficientBalance: {message}", (failed,))
    assert balances.get_account(node.state.overlay(), BOB.public) == balances.AccountInfo(1, bob.free - fee, bob.staked)
    node.db.close()
