"""The runtime's calls: their wire form, stable indices and JSON form.

Every call is a frozen Struct tagged with ``pallet_index * 256 + call_index``; the tags are
the stable call indices of the dispatch table (``chain/runtime.py``) and never change once
released. A call decodes to exactly one of the types in :data:`Call`; an unknown index is a
codec error.

The JSON form, for people and the CLI, is ``{"pallet": "balances", "call": "transfer",
"args": {"dest": "5F...", "value": 10}}``: accounts as SS58 (or 0x-hex or //Dev URIs),
bytes as 0x-hex, float32 arguments (learning rate, decay) as JSON numbers that are rounded to
float32 once, here, so that the signed bytes carry the exact float32 bits.
"""

from __future__ import annotations

import struct
import typing
from typing import Annotated, Any

import msgspec

from chain.codec import AccountId, Balance, Hash32, Wire, name_place
from chain.crypto import parse_account, ss58_encode
from chain.errors import CodecError
from chain.votes import MAX_VOTE_BYTES, SignedVote

# Argument kinds the JSON form converts (carried in msgspec.Meta(extra=...)).
F32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1, extra={"json": "f32"})]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
License = Annotated[str, msgspec.Meta(max_length=4096)]
PERMISSIONS = ("owner", "allowlist", "anyone", "proposal")
Permission = Annotated[str, msgspec.Meta(pattern="^(owner|allowlist|anyone|proposal)$")]
Symbol = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9]{1,16}$")]
MAX_DECIMALS = 18

MAX_REMARK = 4096
# Bounds of the evidence a pol report carries, checked while the extrinsic decodes (before the
# evidence itself is decoded). A header an author builds is about 300 bytes (chain.block's
# BLOCK_OVERHEAD). A fraud proof is dominated by one checkpoint's weights (4 bytes per
# parameter); a whole extrinsic is at most chain.extrinsic.MAX_EXTRINSIC_SIZE (2 MiB) and a
# block's max_block_length anyway, so a proof for a model of more than about 2^19
# parameters cannot be reported in an extrinsic.
MAX_HEADER_BYTES = 1024
MAX_FRAUD_PROOF_BYTES = 2 << 20
MAX_ROWS_CHUNK = 1 << 20  # one append_rows call carries at most 1 MiB of rows
# Paid inference takes what the free ml_predict RPC takes: at most 1,024 rows and 2^18 numbers.
MAX_INFER_ROWS = 1024
MAX_INFER_BYTES = 4 << 18


def _tag(pallet: int, call: int) -> int:
    return pallet * 256 + call


# --- system (0) -------------------------------------------------------------------------------
class Remark(Wire, frozen=True, tag=_tag(0, 0)):
    """Store nothing; only pays the fee (useful for tests and timestamps)."""

    data: Annotated[bytes, msgspec.Meta(max_length=MAX_REMARK)]


# --- balances (1) -----------------------------------------------------------------------------
class Transfer(Wire, frozen=True, tag=_tag(1, 0)):
    """Move ``value`` from the signer to ``dest``."""

    dest: AccountId
    value: Balance


# --- models (2) -------------------------------------------------------------------------------
class RegisterModel(Wire, frozen=True, tag=_tag(2, 0)):
    """Register a model: its spec (ml_runtime's canonical bytes) and the seed of its version 0."""

    name: Name
    spec: Annotated[bytes, msgspec.Meta(max_length=64)]
    init_seed: Hash32


class SetTrainingPolicy(Wire, frozen=True, tag=_tag(2, 1)):
    """The model's owner sets who may train it and the licence price per training step.

    ``permission``: "owner" (the owner, or once shared any shareholder), "allowlist" (the
    owner and the accounts SetTrainer allowed), "anyone", or "proposal" (only the accounts
    adopted proposals allow: set by model governance, chain.pallets.governance).
    """

    model: Count
    permission: Permission
    license_per_step: Balance


class SetTrainer(Wire, frozen=True, tag=_tag(2, 2)):
    """The model's owner adds ``who`` to (or removes it from) the model's training allowlist."""

    model: Count
    who: AccountId
    allowed: bool


class ShareModel(Wire, frozen=True, tag=_tag(2, 3)):
    """The owner splits the model into ``shares`` shares (asset ``SHARES_BASE + model``), all
    issued to the owner; from then on the model is owned by its shareholders."""

    model: Count
    shares: Balance


class ClaimRevenue(Wire, frozen=True, tag=_tag(2, 4)):
    """Pay the signer the revenue its shares of ``model`` have earned (whole units)."""

    model: Count


class PayModel(Wire, frozen=True, tag=_tag(2, 5)):
    """Pay ``amount`` to a model: split among its shareholders, or to its owner if unshared."""

    model: Count
    amount: Balance


class SetInferencePrice(Wire, frozen=True, tag=_tag(2, 6)):
    """The model's owner sets what one row of paid inference (``models.infer``) costs."""

    model: Count
    price_per_row: Balance


class Infer(Wire, frozen=True, tag=_tag(2, 7)):
    """Paid inference: run ``version`` of ``model`` (if None, the version its holders released,
    else its latest: models.compute_default_version) on ``inputs`` inside the
    block and pay the model ``price_per_row`` x rows. ``inputs`` are rows of the model's ``d``
    float32 numbers, little-endian, row after row (1..MAX_INFER_ROWS rows, each number finite);
    the outputs go in the receipt's ``models.InferenceMade`` event. ``max_price``: the most the
    signer pays for them, else the call fails unpaid (``models.PriceAboveLimit``; None:
    any), as for Train's licences."""

    model: Count
    version: Count | None
    inputs: Annotated[bytes, msgspec.Meta(max_length=MAX_INFER_BYTES)]
    max_price: Balance | None = None


class PostBounty(Wire, frozen=True, tag=_tag(2, 8)):
    """Escrow ``amount`` for the first trained version of ``model`` whose loss on data set
    ``dataset`` (every row, computed by the chain) is below ``target_loss`` (float32 bits).
    Unclaimed, the poster may cancel it after block ``expires_at``."""

    model: Count
    dataset: Count
    target_loss: F32
    amount: Balance
    expires_at: Count


class ClaimBounty(Wire, frozen=True, tag=_tag(2, 9)):
    """Ask the chain to evaluate ``version`` for ``bounty``; it pays the version's trainer."""

    bounty: Count
    version: Count


class CancelBounty(Wire, frozen=True, tag=_tag(2, 10)):
    """The poster takes back an expired, unclaimed bounty."""

    bounty: Count


# --- datasets (3) -----------------------------------------------------------------------------
class RegisterDataset(Wire, frozen=True, tag=_tag(3, 0)):
    """Announce a data set; its rows arrive with AppendRows and must hash to ``rows_root``.

    ``kind`` is "classification" (labels in [0, outputs)) or "regression" (``outputs``
    float32 targets per row). A row's canonical bytes: ``features`` float32 LE, then the
    label as u32 LE or the targets as float32 LE.
    """

    name: Name
    features: Count
    kind: Annotated[str, msgspec.Meta(pattern="^(classification|regression)$")]
    outputs: Count
    row_count: Count
    rows_root: Hash32
    price_per_row: Balance
    license: License


class AppendRows(Wire, frozen=True, tag=_tag(3, 1)):
    """Upload rows ``[first_row, first_row + n)`` of a registered, not yet complete data set."""

    dataset: Count
    first_row: Count
    rows: Annotated[bytes, msgspec.Meta(max_length=MAX_ROWS_CHUNK)]


LICENSE_ALLOWED = ("anyone", "accounts", "models")
MAX_LICENSEES = 64


class LicenseTerms(Wire, frozen=True):
    """A data set's licence, as the runtime enforces it on every training job.

    ``price_per_row`` x rows used (steps x batch size) is paid to the provider in the native
    token (``asset`` None) or in a fungible asset. ``allowed``: "anyone", "accounts" (the
    signer must be in ``accounts``) or "models" (the trained model must be in ``models``).
    ``expires_at``: the last block in which a job may use the data (None: never expires).
    ``max_rows_per_job``: a cap on steps x batch size (None: no cap). ``text_hash``: the
    blake2-256 of the licence's legal text, which lives off chain.
    """

    price_per_row: Balance
    asset: Count | None = None
    allowed: Annotated[str, msgspec.Meta(pattern="^(anyone|accounts|models)$")] = "anyone"
    accounts: Annotated[tuple[AccountId, ...], msgspec.Meta(max_length=MAX_LICENSEES)] = ()
    models: Annotated[tuple[Count, ...], msgspec.Meta(max_length=MAX_LICENSEES)] = ()
    expires_at: Count | None = None
    max_rows_per_job: Count | None = None
    text_hash: Hash32 = bytes(32)


class SetDatasetLicense(Wire, frozen=True, tag=_tag(3, 2)):
    """The provider sets new licence terms; they apply to jobs from LICENSE_NOTICE_BLOCKS
    blocks later on, never to jobs already signed against the old terms."""

    dataset: Count
    terms: LicenseTerms


# --- training (4) -----------------------------------------------------------------------------
class Train(Wire, frozen=True, tag=_tag(4, 0)):
    """The TRAIN opcode: SGD on a model version with a data set, producing a new version.

    ``max_model_license`` and ``max_data_license`` are the most the signer pays the model's
    owner (its licence per step x steps, in POL) and the data set's provider (price per row x
    rows, in ``data_license_asset``: None for POL, else that asset); more, and the call fails
    before either is paid (``training.LicenseAboveLimit``), as it does when the terms are in
    another currency (``training.LicenseCurrencyMismatch``: a limit is an amount of one
    currency, and terms may move to another after their notice). None accepts any. An owner may change its licence in the
    block of a pending call, so a call signed at a price must say so (an outside tester's
    finding: a TRAIN signed at a licence of 0 paid 990,000 POL)."""

    model: Count
    dataset: Count
    steps: Count
    batch_size: Count
    lr: F32
    l2: F32
    segment_len: Count
    from_version: Count | None = None  # None: the model's latest version made before the block (models.compute_latest_before)
    max_model_license: Balance | None = None
    max_data_license: Balance | None = None
    data_license_asset: Count | None = None  # the currency of max_data_license: None POL, else an asset


# --- staking (5) ------------------------------------------------------------------------------
class Bond(Wire, frozen=True, tag=_tag(5, 0)):
    """Lock ``value`` of the signer's free balance as stake."""

    value: Balance


class Unbond(Wire, frozen=True, tag=_tag(5, 1)):
    """Start releasing ``value`` of the signer's stake: it stays slashable for ``era_length``
    blocks, then WithdrawUnbonded moves it to the free balance."""

    value: Balance


class WithdrawUnbonded(Wire, frozen=True, tag=_tag(5, 2)):
    """Move the signer's unbonded funds whose unbonding period is over to its free balance."""


# --- assets (6) -------------------------------------------------------------------------------
class CreateAsset(Wire, frozen=True, tag=_tag(6, 0)):
    """Create asset ``asset`` (an unused id below SHARES_BASE) owned and issued by the signer,
    reserving the asset deposit; ``min_balance`` (>= 1) is its existential deposit."""

    asset: Count
    min_balance: Balance


class SetAssetMetadata(Wire, frozen=True, tag=_tag(6, 1)):
    """The asset's owner sets its name, symbol and decimals."""

    asset: Count
    name: Name
    symbol: Symbol
    decimals: Annotated[int, msgspec.Meta(ge=0, le=MAX_DECIMALS)]


class MintAsset(Wire, frozen=True, tag=_tag(6, 2)):
    """The asset's issuer creates ``amount`` new units in ``beneficiary``."""

    asset: Count
    beneficiary: AccountId
    amount: Balance


class BurnAsset(Wire, frozen=True, tag=_tag(6, 3)):
    """The asset's issuer destroys ``amount`` units held by ``who``."""

    asset: Count
    who: AccountId
    amount: Balance


class TransferAsset(Wire, frozen=True, tag=_tag(6, 4)):
    """Move ``amount`` units of ``asset`` from the signer to ``dest``."""

    asset: Count
    dest: AccountId
    amount: Balance


# --- pol (7): proof-of-learning offences -----------------------------------------------------
class ReportFraud(Wire, frozen=True, tag=_tag(7, 0)):
    """Prove that a block's training is wrong: ``proof`` is an encoded chain.fraud.FraudProof
    (bytes, not the struct: a call cannot nest an Extrinsic without an import cycle). The
    block's author is slashed; the signer gets the reporter's share."""

    proof: Annotated[bytes, msgspec.Meta(max_length=MAX_FRAUD_PROOF_BYTES)]


class ReportEquivocation(Wire, frozen=True, tag=_tag(7, 1)):
    """Prove that one author sealed two different blocks in one Aura slot: two encoded sealed
    headers (chain.header.Header.encode)."""

    first: Annotated[bytes, msgspec.Meta(max_length=MAX_HEADER_BYTES)]
    second: Annotated[bytes, msgspec.Meta(max_length=MAX_HEADER_BYTES)]


class ReportVoteEquivocation(Wire, frozen=True, tag=_tag(7, 2)):
    """Prove that one validator broke a finality slashing condition (a double or a surround
    vote): two encoded chain.votes.SignedVote."""

    first: Annotated[bytes, msgspec.Meta(max_length=MAX_VOTE_BYTES)]
    second: Annotated[bytes, msgspec.Meta(max_length=MAX_VOTE_BYTES)]


# --- gov (8): a DAO per shared model --------------------------------------------------------
PPM = 1_000_000  # parts per million: the unit of quorum, threshold and treasury share
Ppm = Annotated[int, msgspec.Meta(ge=0, le=PPM)]


class ProposePolicy(Wire, frozen=True, tag=_tag(8, 0)):
    """Propose a shared model's training permission and licence per step ("proposal":
    only the accounts adopted proposals allow may train it)."""

    model: Count
    permission: Permission
    license_per_step: Balance


class ProposeInferencePrice(Wire, frozen=True, tag=_tag(8, 1)):
    """Propose a shared model's price per row of paid inference."""

    model: Count
    price_per_row: Balance


class ProposeRelease(Wire, frozen=True, tag=_tag(8, 2)):
    """Propose adopting ``version`` as the model's released version."""

    model: Count
    version: Count


class ProposeSpend(Wire, frozen=True, tag=_tag(8, 3)):
    """Propose paying ``amount`` from the model's treasury to ``dest``."""

    model: Count
    dest: AccountId
    amount: Balance


class ProposeTrainer(Wire, frozen=True, tag=_tag(8, 4)):
    """Propose adding ``who`` to (or removing it from) the model's training allowlist."""

    model: Count
    who: AccountId
    allowed: bool


class ProposeParams(Wire, frozen=True, tag=_tag(8, 5)):
    """Propose the model's governance parameters: quorum (turnout, of all shares) and
    threshold (ayes, of the votes cast) in ppm, the voting and enactment periods in blocks,
    and the share of every payment to the model set aside for its treasury, in ppm."""

    model: Count
    quorum: Ppm
    threshold: Ppm
    voting_blocks: Count
    enactment_blocks: Count
    treasury: Ppm


class Vote(Wire, frozen=True, tag=_tag(8, 6)):
    """Vote on a proposal with every share of its model the signer holds; the shares stay
    locked (not transferable) until the vote ends."""

    proposal: Count
    aye: bool
# --- federated (10) ---------------------------------------------------------------------------
# Federated learning with verified updates (chain/pallets/federated.py has the protocol).
MAX_FL_ALLOWLIST = 64
MAX_FL_PATH = 32  # Merkle audit path hashes: enough for 2^32 leaves
MAX_FL_WEIGHTS = 4 << 18  # bytes of one weight vector: max_model_params float32s at most
MAX_FL_REVEAL_ROWS = 1 << 16
FlPath = Annotated[tuple[Hash32, ...], msgspec.Meta(max_length=MAX_FL_PATH)]


class OpenRound(Wire, frozen=True, tag=_tag(10, 0)):
    """The model's owner opens a federated round on ``base_version``.

    ``allowlist`` empty: anyone may take part. Participants train ``local_steps`` SGD steps
    of ``batch_size`` rows at ``lr``/``l2`` from the base version, checkpointing every
    ``segment_len`` steps; ``samples`` segments of each update are challenged. Commits are
    accepted up to block ``commit_deadline``, reveals up to ``reveal_deadline``. Each
    participant reserves ``bond``; the owner reserves ``reward_pool``.
    """

    model: Count
    base_version: Count
    allowlist: Annotated[tuple[AccountId, ...], msgspec.Meta(max_length=MAX_FL_ALLOWLIST)]
    local_steps: Count
    batch_size: Count
    lr: F32
    l2: F32
    segment_len: Count
    samples: Count
    min_updates: Count
    max_updates: Count
    bond: Balance
    reward_pool: Balance
    commit_deadline: Count
    reveal_deadline: Count


class CommitUpdate(Wire, frozen=True, tag=_tag(10, 1)):
    """A participant's update: its data commitment and what local training produced.

    ``data_root`` is the RFC 6962 root of its ``row_count`` rows' canonical bytes (no row is
    on chain); ``weights`` the new weights (float32 LE); ``losses`` the float32 bits of every
    transcript entry; ``first_path``/``last_path`` the audit paths of entries 0 and S;
    ``dataset`` a registered data set whose rows these are (same root and count), whose
    provider is then paid price_per_row x rows used, as by a TRAIN call; ``max_data_license``
    the most the signer pays it, in ``data_license_asset`` (None: POL; more, or terms in another
    currency, and the commit fails, ``federated.LicenseAboveLimit`` or
    ``federated.LicenseCurrencyMismatch``; None accepts any), as TRAIN's: the licence's notice alone
    did not protect a commit held back past it, which paid 10^9 times the price it was signed
    at (an outside tester's finding, round 13).
    """

    round: Count
    data_root: Hash32
    row_count: Count
    sample_count: Count
    weights: Annotated[bytes, msgspec.Meta(max_length=MAX_FL_WEIGHTS)]
    transcript_root: Hash32
    losses: Annotated[tuple[Count, ...], msgspec.Meta(max_length=1 << 16)]
    first_path: FlPath
    last_path: FlPath
    dataset: Count | None = None  # the rows are this registered data set's: its licence is paid
    max_data_license: Balance | None = None
    data_license_asset: Count | None = None


class ChallengeRound(Wire, frozen=True, tag=_tag(10, 2)):
    """Anyone, after the commit deadline: fix the challenge randomness and end the commits."""

    round: Count


class RevealSegment(Wire, frozen=True, tag=_tag(10, 3)):
    """A participant opens one challenged segment j: checkpoint j's weights with the audit
    path of entry j, the weights hash of entry j+1 with its path, and the distinct rows the
    segment's batches use (ascending row index) with their paths under the data root."""

    round: Count
    segment: Count
    weights: Annotated[bytes, msgspec.Meta(max_length=MAX_FL_WEIGHTS)]
    start_path: FlPath
    end_hash: Hash32
    end_path: FlPath
    rows: Annotated[bytes, msgspec.Meta(max_length=MAX_ROWS_CHUNK)]
    row_paths: Annotated[tuple[FlPath, ...], msgspec.Meta(max_length=MAX_FL_REVEAL_ROWS)]


class CloseRound(Wire, frozen=True, tag=_tag(10, 4)):
    """Anyone, after the reveal deadline (or once every update is decided): aggregate, pay."""

    round: Count


# --- democracy (11): POL holders vote on the runtime config --------------------------------
# chain/pallets/democracy.py has the rules; a change names a RuntimeConfig field (chain.config).
MAX_CONFIG_CHANGES = 32  # at most one change per RuntimeConfig field (there are 24)
ConfigField = Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9_]{0,63}$")]


class ConfigChange(Wire, frozen=True):
    """Set the runtime config's field ``name`` to ``value``."""

    name: ConfigField
    value: Balance


class ProposeConfig(Wire, frozen=True, tag=_tag(11, 0)):
    """Propose a referendum on the runtime config: ``changes`` sorted by name, each field once.
    The proposer deposits democracy.PROPOSAL_DEPOSIT until the vote ends."""

    changes: Annotated[tuple[ConfigChange, ...], msgspec.Meta(max_length=MAX_CONFIG_CHANGES)]


class VoteConfig(Wire, frozen=True, tag=_tag(11, 1)):
    """Vote on a runtime-config referendum with ``amount`` POL, locked until the vote ends."""

    referendum: Count
    aye: bool
    amount: Balance


class UnlockVote(Wire, frozen=True, tag=_tag(11, 2)):
    """After the vote on ``referendum`` ended, take back the POL the signer locked on it."""

    referendum: Count


# --- rewards (12) ----------------------------------------------------------------------------
#: Votes one note_votes call carries: one per validator at most (consensus.finality's bound on
#: a justification's votes, MAX_VOTES), checked while the call decodes, before any vote does.
MAX_NOTED_VOTES = 1024


class NoteVotes(Wire, frozen=True, tag=_tag(12, 0)):
    """Carry finality votes into the chain so that their voters are paid (chain.pallets.rewards):
    each a chain.votes.SignedVote for a block of this chain, at most one per voter. Anyone may
    submit it; in practice each block's author notes the votes it has seen."""

    votes: Annotated[tuple[SignedVote, ...], msgspec.Meta(max_length=MAX_NOTED_VOTES)]


Call = (
    Remark | Transfer | RegisterModel | SetTrainingPolicy | SetTrainer | ShareModel | ClaimRevenue | PayModel
    | SetInferencePrice | Infer | PostBounty | ClaimBounty | CancelBounty
    | RegisterDataset | AppendRows | SetDatasetLicense | Train | Bond | Unbond
    | CreateAsset | SetAssetMetadata | MintAsset | BurnAsset | TransferAsset
    | ReportFraud | ReportEquivocation | ReportVoteEquivocation | WithdrawUnbonded
    | ProposePolicy | ProposeInferencePrice | ProposeRelease | ProposeSpend | ProposeTrainer | ProposeParams | Vote
    | OpenRound | CommitUpdate | ChallengeRound | RevealSegment | CloseRound
    | ProposeConfig | VoteConfig | UnlockVote
    | NoteVotes
)

# (pallet name, call name) for each call type, in tag order; the JSON form uses these names.
CALL_NAMES: dict[type[Wire], tuple[str, str]] = {
    Remark: ("system", "remark"),
    Transfer: ("balances", "transfer"),
    RegisterModel: ("models", "register_model"),
    SetTrainingPolicy: ("models", "set_training_policy"),
    SetTrainer: ("models", "set_trainer"),
    ShareModel: ("models", "share_model"),
    ClaimRevenue: ("models", "claim_revenue"),
    PayModel: ("models", "pay_model"),
    SetInferencePrice: ("models", "set_inference_price"),
    Infer: ("models", "infer"),
    PostBounty: ("models", "post_bounty"),
    ClaimBounty: ("models", "claim_bounty"),
    CancelBounty: ("models", "cancel_bounty"),
    RegisterDataset: ("datasets", "register_dataset"),
    AppendRows: ("datasets", "append_rows"),
    SetDatasetLicense: ("datasets", "set_license"),
    Train: ("training", "train"),
    Bond: ("staking", "bond"),
    Unbond: ("staking", "unbond"),
    CreateAsset: ("assets", "create"),
    SetAssetMetadata: ("assets", "set_metadata"),
    MintAsset: ("assets", "mint"),
    BurnAsset: ("assets", "burn"),
    TransferAsset: ("assets", "transfer"),
    ReportFraud: ("pol", "report_fraud"),
    ReportEquivocation: ("pol", "report_equivocation"),
    ReportVoteEquivocation: ("pol", "report_vote_equivocation"),
    WithdrawUnbonded: ("staking", "withdraw_unbonded"),
    ProposePolicy: ("gov", "propose_policy"),
    ProposeInferencePrice: ("gov", "propose_inference_price"),
    ProposeRelease: ("gov", "propose_release"),
    ProposeSpend: ("gov", "propose_spend"),
    ProposeTrainer: ("gov", "propose_trainer"),
    ProposeParams: ("gov", "propose_params"),
    Vote: ("gov", "vote"),
    OpenRound: ("federated", "open_round"),
    CommitUpdate: ("federated", "commit_update"),
    ChallengeRound: ("federated", "challenge"),
    RevealSegment: ("federated", "reveal_segment"),
    CloseRound: ("federated", "close_round"),
    ProposeConfig: ("democracy", "propose"),
    VoteConfig: ("democracy", "vote"),
    UnlockVote: ("democracy", "unlock"),
    NoteVotes: ("rewards", "note_votes"),
}
_BY_NAME = {names: typ for typ, names in CALL_NAMES.items()}


def compute_f32_bits(value: float) -> int:
    """The float32 bit pattern nearest to ``value`` (round to nearest even)."""
    return int.from_bytes(struct.pack("<f", value), "little")


def compute_f32_value(bits: int) -> float:
    """The float32 value of a bit pattern, as a Python float (exact)."""
    return float(struct.unpack("<f", bits.to_bytes(4, "little"))[0])


def call_to_json(call: Call) -> dict[str, Any]:
    """The JSON form of a call."""
    pallet, name = CALL_NAMES[type(call)]
    return {"pallet": pallet, "call": name, "args": _struct_to_json(call)}


def _struct_to_json(obj: msgspec.Struct) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj), include_extras=True)
    return {f: _arg_to_json(hints[f], getattr(obj, f)) for f in obj.__struct_fields__}


def call_from_json(obj: Any) -> Call:
    """A call from its JSON form; raises CodecError saying which part is wrong."""
    if not isinstance(obj, dict) or not {"pallet", "call"} <= obj.keys():
        raise CodecError('a call is {"pallet": ..., "call": ..., "args": {...}}')
    typ = _BY_NAME.get((obj["pallet"], obj["call"]))
    if typ is None:
        raise CodecError(f"unknown call {obj['pallet']}.{obj['call']}")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise CodecError(f"{obj['pallet']}.{obj['call']}: args must be an object")
    values = _struct_values(typ, args, f"{obj['pallet']}.{obj['call']}")
    value = [typ.__struct_config__.tag, *values]
    try:
        return typing.cast(Call, msgspec.convert(value, typ, strict=True))
    except msgspec.ValidationError as exc:
        raise CodecError(f"{obj['pallet']}.{obj['call']}: {name_place(exc, typ, value)}") from None


def _struct_values(typ: Any, args: dict[str, Any], where: str) -> list[Any]:
    """The positional values of an array_like struct from its JSON object (defaults filled in)."""
    hints = typing.get_type_hints(typ, include_extras=True)
    unknown = set(args) - set(typ.__struct_fields__)
    if unknown:
        raise CodecError(f"{where}: unknown arguments {sorted(unknown)}")
    fields = typ.__struct_fields__
    defaults = dict(zip(fields[len(fields) - len(typ.__struct_defaults__) :], typ.__struct_defaults__, strict=True))
    missing = [f for f in fields if f not in args and f not in defaults]
    if missing:
        raise CodecError(f"{where}: missing arguments {missing}")
    # array_like structs convert from a positional list (a tagged one: the tag first).
    return [_arg_from_json(f, hints[f], args[f]) if f in args else defaults[f] for f in fields]


def _element(hint: Any) -> Any:
    """X of ``tuple[X, ...]`` (through Annotated), else None."""
    base = typing.get_args(hint)[0] if hasattr(hint, "__metadata__") else hint
    if typing.get_origin(base) is tuple:
        return typing.get_args(base)[0]
    return None


def _struct_type(hint: Any) -> Any:
    base = typing.get_args(hint)[0] if hasattr(hint, "__metadata__") else hint
    return base if isinstance(base, type) and issubclass(base, msgspec.Struct) else None


def _kind(hint: Any) -> str | None:
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, msgspec.Meta) and meta.extra and "json" in meta.extra:
            return str(meta.extra["json"])
    if hint is AccountId:
        return "account"
    base = typing.get_args(hint)[0] if hasattr(hint, "__metadata__") else hint
    return "hex" if base is bytes else None


def _arg_to_json(hint: Any, value: Any) -> Any:
    kind = _kind(hint)
    if value is None:
        return None
    if isinstance(value, msgspec.Struct):
        return _struct_to_json(value)
    if isinstance(value, tuple):
        return [_arg_to_json(_element(hint), v) for v in value]
    if kind == "account":
        return ss58_encode(value)
    if kind == "hex":
        return "0x" + value.hex()
    if kind == "f32":
        return compute_f32_value(value)
    return value


def _arg_from_json(name: str, hint: Any, value: Any) -> Any:
    kind = _kind(hint)
    struct_type = _struct_type(hint)
    if struct_type is not None and isinstance(value, dict):
        return _struct_values(struct_type, value, f"argument {name!r}")
    element = _element(hint)
    if element is not None and isinstance(value, list):
        return [_arg_from_json(name, element, v) for v in value]
    try:
        if kind == "account" and isinstance(value, str):
            return parse_account(value)
        if kind == "hex" and isinstance(value, str):
            if not value.startswith("0x"):
                raise ValueError("bytes are 0x-prefixed hex")
            return bytes.fromhex(value[2:])
        if kind == "f32" and isinstance(value, int | float) and not isinstance(value, bool):
            return compute_f32_bits(float(value))
    except (ValueError, OverflowError, struct.error) as exc:
        raise CodecError(f"argument {name!r}: {exc}") from None
    except Exception as exc:  # parse_account raises chain errors with a clear message
        raise CodecError(f"argument {name!r}: {exc}") from None
    return value
