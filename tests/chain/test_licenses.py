"""Data set licences through real blocks: terms enforced on every job, changed only for
future jobs (after LICENSE_NOTICE_BLOCKS), paid in POL or an asset, usage recorded. Every
refusal goes through test_pallets.Driver, which asserts the state equals the parent's plus
the fee and nonce only."""

from __future__ import annotations

import msgspec
from chainkit import ALICE, BOB, CHARLIE, FERDIE, event_args, train_call
from test_pallets import DAVE, Driver

from chain import calls
from chain.crypto import blake2_256
from chain.pallets import assets, balances, datasets, licenses

USDP = 1



def _wait(d: Driver, blocks: int) -> None:
    for _ in range(blocks):
        assert d.apply(DAVE, calls.Remark(b"tick")).success


def _terms(chain, block: int | None = None) -> calls.LicenseTerms:
    state = chain.state.overlay()
    info = datasets.get_dataset(state, 0)
    return licenses.get_terms(state, 0, info, chain.best_number + 1 if block is None else block)


def test_registered_terms_are_the_price_and_text_hash(chain) -> None:
    info = datasets.get_dataset(chain.state.overlay(), 0)
    assert _terms(chain) == calls.LicenseTerms(info.price_per_row, text_hash=blake2_256(info.license.encode()))


def test_terms_change_after_notice_and_are_enforced(chain) -> None:
    d = Driver(chain)
    terms = calls.LicenseTerms(3, asset=USDP, allowed="accounts", accounts=(BOB.public,), max_rows_per_job=1000,
                               expires_at=10_000, text_hash=bytes(range(32)))
    d.fails(BOB, calls.SetDatasetLicense(0, terms), "datasets.NotProvider")
    d.fails(FERDIE, calls.SetDatasetLicense(7, terms), "datasets.UnknownDataset")
    d.fails(FERDIE, calls.SetDatasetLicense(0, calls.LicenseTerms(1, asset=99)), "assets.UnknownAsset")
    receipt = d.apply(FERDIE, calls.SetDatasetLicense(0, terms))
    assert receipt.success, receipt.error
    set_at = chain.best_number
    # Jobs signed against the old terms still train under them until the notice runs out.
    assert d.apply(CHARLIE, train_call(steps=20, batch=8)).success
    _wait(d, set_at + licenses.LICENSE_NOTICE_BLOCKS - chain.best_number - 1)
    assert chain.best_number + 1 == set_at + licenses.LICENSE_NOTICE_BLOCKS
    assert _terms(chain) == terms
    d.fails(CHARLIE, train_call(steps=20, batch=8), "datasets.NotLicensed")
    d.fails(BOB, train_call(steps=100, batch=16), "datasets.RowsCapExceeded")
    usdp_before = assets.get_balance(chain.state.overlay(), USDP, FERDIE.public)
    pol_before = balances.get_account(chain.state.overlay(), FERDIE.public).free
    trained = d.apply(BOB, train_call(steps=40, batch=16))
    assert trained.success, trained.error
    state = chain.state.overlay()
    assert assets.get_balance(state, USDP, FERDIE.public) == usdp_before + 3 * 40 * 16
    assert balances.get_account(state, FERDIE.public).free == pol_before  # paid in USDP, not POL
    paid = event_args(trained, "LicensePaid")
    assert paid["amount"] == 1920 and paid["asset"] == USDP
    usage = licenses.USAGE.get(state, 0, 0, licenses.compute_currency(terms))
    assert usage == licenses.LicenseUsage(1, 640, 1920)
    assert licenses.USAGE_INDEX.get(state, 0) == ((0, licenses.NATIVE), (0, USDP + 1))


def test_expiry_and_model_only_licences(chain) -> None:
    d = Driver(chain)
    start = chain.best_number + 1
    expires = start + licenses.LICENSE_NOTICE_BLOCKS + 1
    assert d.apply(FERDIE, calls.SetDatasetLicense(0, calls.LicenseTerms(0, allowed="models", models=(5,), expires_at=expires))).success
    _wait(d, licenses.LICENSE_NOTICE_BLOCKS - 1)
    d.fails(BOB, train_call(steps=10, batch=4), "datasets.NotLicensed")
    assert d.apply(FERDIE, calls.SetDatasetLicense(0, calls.LicenseTerms(0, expires_at=expires))).success
    _wait(d, licenses.LICENSE_NOTICE_BLOCKS)
    d.fails(BOB, train_call(steps=10, batch=4), "datasets.LicenseExpired")


def test_set_license_json_round_trip() -> None:
    call = calls.SetDatasetLicense(0, calls.LicenseTerms(5, asset=1, allowed="accounts", accounts=(BOB.public,), max_rows_per_job=9))
    obj = calls.call_to_json(call)
    assert obj["args"]["terms"]["accounts"] == [BOB.address]
    assert calls.call_from_json(obj) == call


def test_a_price_that_overflows_for_the_rows_used_fails_before_paying(chain) -> None:
    d = Driver(chain)
    assert d.apply(FERDIE, calls.SetDatasetLicense(0, calls.LicenseTerms(2**62))).success
    _wait(d, licenses.LICENSE_NOTICE_BLOCKS - 1)
    d.fails(BOB, train_call(steps=10, batch=4), "datasets.Overflow")


def test_a_train_call_never_pays_more_licence_than_it_says(chain) -> None:
    """A model owner's licence per step applies at once, so a TRAIN signed at one price could
    pay another (an outside tester's finding: 990,000 POL for a call signed at 0); the data
    set's price changes only after notice, but a call may wait in the pool past it. Past
    either limit the call fails before anything is paid; at it, it pays."""
    d = Driver(chain)
    assert d.apply(ALICE, calls.SetTrainingPolicy(0, "anyone", 1000)).success  # Alice owns model 0
    job = train_call(steps=20, batch=8)  # 20 steps x 1000; 160 rows x the data set's 1000 a row
    limits = {"max_model_license": 20_000, "max_data_license": 160_000}
    for field, says in (("max_model_license", "the model's licence is 20000; the call pays at most 19999"),
                        ("max_data_license", "the data set's licence is 160000; the call pays at most 159999")):
        over = msgspec.structs.replace(job, **{**limits, field: limits[field] - 1})
        d.fails(BOB, over, f"training.LicenseAboveLimit: {says}")
    trained = d.apply(BOB, msgspec.structs.replace(job, **limits))
    assert trained.success, trained.error
    assert event_args(trained, "LicensePaid")["amount"] == 160_000 and event_args(trained, "ModelLicensePaid")["amount"] == 20_000


def test_a_data_licence_limit_is_in_the_currency_it_names(chain) -> None:
    """A limit is an amount of one currency: a provider who moves its terms from POL to an
    asset (after the notice) would otherwise be paid up to the limit in whatever the asset is
    worth (an outside tester's note, round 13). With a limit, the terms' currency must be the
    one the call names (``data_license_asset``, None for POL); without one, any is paid."""
    d = Driver(chain)
    assert d.apply(FERDIE, calls.SetDatasetLicense(0, calls.LicenseTerms(3, asset=USDP))).success
    _wait(d, licenses.LICENSE_NOTICE_BLOCKS - 1)
    job = train_call(steps=20, batch=8)  # 160 rows x 3 USDP
    in_pol = msgspec.structs.replace(job, max_data_license=10**12)
    d.fails(BOB, in_pol, "training.LicenseCurrencyMismatch: the data set's licence is paid in asset 1; the call's limit is in POL")
    in_other = msgspec.structs.replace(job, max_data_license=10**12, data_license_asset=USDP + 1)
    d.fails(BOB, in_other, "training.LicenseCurrencyMismatch: the data set's licence is paid in asset 1; the call's limit is in asset 2")
    over = msgspec.structs.replace(job, max_data_license=479, data_license_asset=USDP)
    d.fails(BOB, over, "training.LicenseAboveLimit: the data set's licence is 480; the call pays at most 479")
    for ok in (msgspec.structs.replace(job, max_data_license=480, data_license_asset=USDP), job):
        trained = d.apply(BOB, ok)
        assert trained.success, trained.error
        assert event_args(trained, "LicensePaid")["amount"] == 480 and event_args(trained, "LicensePaid")["asset"] == USDP


def test_a_limit_in_an_asset_is_refused_for_a_licence_in_pol(chain) -> None:
    d = Driver(chain)
    job = train_call(steps=20, batch=8)  # the registered terms: POL
    d.fails(BOB, msgspec.structs.replace(job, max_data_license=10**12, data_license_asset=USDP),
            "training.LicenseCurrencyMismatch: the data set's licence is paid in POL; the call's limit is in asset 1")
    assert d.apply(BOB, msgspec.structs.replace(job, max_data_license=10**12)).success
