"""Data set licences the runtime enforces, and what each model's training used and paid.

A data set's terms (``chain.calls.LicenseTerms``): a price per row used, in the native token
or an asset; who may train on it (anyone, listed accounts, or listed models); the last block
in which a job may use it; a cap on rows per job; the hash of the legal text. Every TRAIN
call checks them before its job runs and pays ``price_per_row`` x steps x batch size to the
provider (:func:`apply_license`); a job that breaks a term fails with a specific error and
pays only its fee.

Terms change for future jobs only: ``datasets.set_license`` takes effect
:data:`LICENSE_NOTICE_BLOCKS` blocks after the block that sets it, so a training transaction
signed (and waiting in a pool) against the old terms cannot be front-run by a price rise.
Until it is set, a data set's terms are those it was registered with: its ``price_per_row``
in the native token, anyone may train, no expiry, no cap, and the hash of its licence text.

What the terms bind is the jobs that name the data set. Its rows are public state once
uploaded: a copy registered under another id, or reordered (another rows root), trains on
the copier's terms, and a federated update that names no data set pays none. The runtime
cannot tell that two sets of rows are the same rows, so it does not pretend to; an index of
rows roots would stop only the exact copy (an outside tester's finding, round 4).

Usage is recorded per (data set, model, currency): jobs, rows and amount paid; the data set's
index of those records keeps the first :data:`MAX_USAGE_ENTRIES` (later ones are still
recorded and readable by key, and counted in the totals).
"""

from __future__ import annotations

from chain.calls import LicenseTerms, SetDatasetLicense
from chain.codec import MAX_BALANCE, U32, Balance, BlockNumber, Wire
from chain.crypto import blake2_256
from chain.errors import DispatchError
from chain.pallets import assets
from chain.pallets.balances import apply_move
from chain.pallets.context import CallContext
from chain.pallets.datasets import DATASETS, DatasetInfo, get_dataset
from chain.pallets.items import StateAccess, StorageMap

PALLET = "datasets"
LICENSE_NOTICE_BLOCKS = 10
MAX_USAGE_ENTRIES = 256
NATIVE = 0  # currency key of the native token; asset a is a + 1
U32_MAX = 2**32 - 1


class LicenseRecord(Wire, frozen=True):
    current: LicenseTerms
    next: LicenseTerms | None = None
    next_from: BlockNumber = 0  # the first block in which ``next`` applies


class LicenseUsage(Wire, frozen=True):
    jobs: U32 = 0
    rows: Balance = 0
    paid: Balance = 0


LICENSES = StorageMap("Datasets", "Licenses", LicenseRecord)
USAGE = StorageMap("Datasets", "Usage", LicenseUsage)  # (data set, model, currency) -> usage
USAGE_INDEX = StorageMap("Datasets", "UsageIndex", tuple[tuple[U32, U32], ...])  # data set -> (model, currency)
USAGE_TOTAL = StorageMap("Datasets", "UsageTotal", LicenseUsage)  # (data set, currency) -> usage


def compute_registered_terms(info: DatasetInfo) -> LicenseTerms:
    """The terms a data set has until its provider sets others."""
    return LicenseTerms(info.price_per_row, text_hash=blake2_256(info.license.encode()))


def get_terms(state: StateAccess, dataset_id: int, info: DatasetInfo, block: int) -> LicenseTerms:
    """The terms that apply to a job in block ``block``."""
    record = LICENSES.get(state, dataset_id)
    if record is None:
        return compute_registered_terms(info)
    if record.next is not None and block >= record.next_from:
        return record.next
    return record.current


def compute_currency(terms: LicenseTerms) -> int:
    return NATIVE if terms.asset is None else terms.asset + 1


def verify_terms(terms: LicenseTerms, dataset_id: int, trainer: bytes, model: int, rows: int, block: int) -> None:
    """DispatchError if a job by ``trainer`` on ``model`` using ``rows`` rows in ``block`` breaks a term."""
    if terms.expires_at is not None and block > terms.expires_at:
        raise DispatchError(PALLET, "LicenseExpired", f"data set {dataset_id}'s licence expired after block {terms.expires_at}")
    if terms.allowed == "accounts" and trainer not in terms.accounts:
        raise DispatchError(PALLET, "NotLicensed", f"data set {dataset_id} is licensed to listed accounts only")
    if terms.allowed == "models" and model not in terms.models:
        raise DispatchError(PALLET, "NotLicensed", f"data set {dataset_id} is licensed to listed models only, not model {model}")
    if terms.max_rows_per_job is not None and rows > terms.max_rows_per_job:
        raise DispatchError(
            PALLET, "RowsCapExceeded", f"the job uses {rows} rows (steps x batch size); data set {dataset_id} allows {terms.max_rows_per_job} a job"
        )


def apply_license(
    state: StateAccess, dataset_id: int, info: DatasetInfo, trainer: bytes, model: int, rows: int, block: int,
    existential_deposit: int,
) -> tuple[int, LicenseTerms]:
    """Check the terms for one job, pay the provider, record the usage; returns (paid, terms)."""
    terms = get_terms(state, dataset_id, info, block)
    verify_terms(terms, dataset_id, trainer, model, rows, block)
    price = terms.price_per_row * rows
    if price > 2**63 - 1:
        raise DispatchError(PALLET, "Overflow", f"{rows} rows at {terms.price_per_row} a row exceed 2^63-1")
    if price:
        if terms.asset is None:
            apply_move(state, trainer, info.provider, price, existential_deposit)
        else:
            assets.apply_transfer_asset(state, terms.asset, trainer, info.provider, price)
    _apply_usage(state, dataset_id, model, compute_currency(terms), rows, price)
    return price, terms


def compute_limit_breach(paid: int, terms: LicenseTerms, payer: str, limit: int | None, limit_asset: int | None) -> tuple[str, str] | None:
    """Why a job's payment of ``paid`` under ``terms`` breaks its signer's limit of ``limit``
    in ``limit_asset`` (None: POL), as (error, message); None if it does not or there is no
    limit. A limit is an amount of one currency: terms that moved to another after their notice
    would otherwise be paid up to it in whatever that currency is worth (an outside tester's
    note, round 13). ``payer`` names the call in the message ("the call", "the commit")."""
    if limit is None:
        return None
    if terms.asset != limit_asset:
        return "LicenseCurrencyMismatch", (
            f"the data set's licence is paid in {_currency_name(terms.asset)}; {payer}'s limit is in {_currency_name(limit_asset)}"
        )
    if paid > limit:
        return "LicenseAboveLimit", f"the data set's licence is {paid}; {payer} pays at most {limit}"
    return None


def _currency_name(asset: int | None) -> str:
    return "POL" if asset is None else f"asset {asset}"


def compute_native_price(state: StateAccess, dataset_id: int, rows: int, block: int) -> int:
    """What a job of ``rows`` rows on data set ``dataset_id`` in block ``block`` pays its
    provider in POL at the terms in force (0 for an unknown data set or terms in an asset; at
    most 2^63-1, a price over which fails before paying): a pool's count of what a TRAIN or a
    federated commit may move out of its sender's free balance (chain.runtime, ``spend``).
    Two reads; the terms' other rules are left to dispatch."""
    info = DATASETS.get(state, dataset_id)
    if info is None:
        return 0
    terms = get_terms(state, dataset_id, info, block)
    if terms.asset is not None:
        return 0
    return min(terms.price_per_row * rows, MAX_BALANCE)


def _apply_usage(state: StateAccess, dataset_id: int, model: int, currency: int, rows: int, paid: int) -> None:
    old = USAGE.get(state, dataset_id, model, currency)
    if old is None:
        index = USAGE_INDEX.get(state, dataset_id) or ()
        if len(index) < MAX_USAGE_ENTRIES:
            USAGE_INDEX.apply_set(state, (*index, (model, currency)), dataset_id)
        old = LicenseUsage()
    USAGE.apply_set(state, _compute_added(old, rows, paid), dataset_id, model, currency)
    total = USAGE_TOTAL.get(state, dataset_id, currency) or LicenseUsage()
    USAGE_TOTAL.apply_set(state, _compute_added(total, rows, paid), dataset_id, currency)


def _compute_added(usage: LicenseUsage, rows: int, paid: int) -> LicenseUsage:
    """``usage`` plus one job, each count saturating at its type's bound (then a lower bound).

    Totals are not bounded by the supply: funds circulate, and a provider paying itself (its
    own data set, trainer == provider) moves nothing yet adds the price. Unsaturated, a total
    past 2^63-1 was stored as a value no reader decodes, and every later job on the data set
    failed on reading it."""
    return LicenseUsage(min(usage.jobs + 1, U32_MAX), min(usage.rows + rows, MAX_BALANCE), min(usage.paid + paid, MAX_BALANCE))


def apply_set_license(ctx: CallContext, call: SetDatasetLicense) -> None:
    info = get_dataset(ctx.state, call.dataset)
    if info.provider != ctx.sender:
        raise DispatchError(PALLET, "NotProvider", f"only the provider sets data set {call.dataset}'s licence")
    terms = call.terms
    if terms.asset is not None:
        if assets.compute_shares_model(terms.asset) is not None:
            raise DispatchError(PALLET, "InvalidCurrency", "model shares are not a currency for licences (votes lock them)")
        assets.get_asset(ctx.state, terms.asset)  # UnknownAsset
    number = ctx.block.number
    record = LICENSES.get(ctx.state, call.dataset)
    current = get_terms(ctx.state, call.dataset, info, number) if record is not None else compute_registered_terms(info)
    starts = number + LICENSE_NOTICE_BLOCKS
    LICENSES.apply_set(ctx.state, LicenseRecord(current, terms, starts), call.dataset)
    ctx.emit(PALLET, "LicenseSet", dataset=call.dataset, applies_from=starts, price_per_row=terms.price_per_row)
