"""The argument bounds of every call (chain/calls.py), pinned and checked at both edges.

A call's arguments arrive in extrinsics from peers and RPC clients and are bounded while
they decode, by ``msgspec.Meta`` declarations on the call's fields (and on the named types of
chain.codec). mutmut mutates function bodies only, so it never moves a declared bound: this file
does the mutation testing of them by hand.

1. ``BOUNDS`` lists every bounded field of every call, nested structs and tuple elements
   included, with its bound; the test reads the declarations and compares, so a bound that
   moves, a field that loses its bound or a new unbounded field is seen (every int, bytes, str
   and tuple a call carries is bounded: none is left to msgspec's own 64-bit range).
2. For each bound, a call whose field sits exactly on the edge decodes, and the first value
   past it is refused with msgspec's reason for that bound at that field's position.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import msgspec
import pytest

from chain import calls
from chain.codec import decode, encode
from chain.errors import CodecError

U32, U63 = 2**32 - 1, 2**63 - 1

# path -> bound. "a..b": an int in a..b; "len a..b": a length (bytes, str or array);
# "/re/": a str matching re. "[]" is a tuple's element, "|" the non-null side of an Optional.
BOUNDS: dict[str, str] = {}


def _pin(call: str, spec: str) -> None:
    for item in spec.split():
        path, bound = item.split("=", 1)
        BOUNDS[f"{call}.{path}"] = bound.replace("len_", "len ")


HASH, U32R, U63R = "len_32..32", f"0..{U32}", f"0..{U63}"
_VOTE = (
    f"votes=len_0..1024 votes[].vote.set_id={U63R} votes[].vote.source.block_hash={HASH} "
    f"votes[].vote.source.block_number={U32R} votes[].vote.source.round={U63R} votes[].vote.target.block_hash={HASH} "
    f"votes[].vote.target.block_number={U32R} votes[].vote.target.round={U63R} votes[].voter={HASH} "
    "votes[].signature=len_64..64"
)
for _call, _spec in {
    "Remark": "data=len_0..4096",
    "Transfer": f"dest={HASH} value={U63R}",
    "RegisterModel": f"name=len_1..64 spec=len_0..64 init_seed={HASH}",
    "SetTrainingPolicy": f"model={U32R} permission=/^(owner|allowlist|anyone|proposal)$/ license_per_step={U63R}",
    "SetTrainer": f"model={U32R} who={HASH}",
    "ShareModel": f"model={U32R} shares={U63R}",
    "ClaimRevenue": f"model={U32R}",
    "PayModel": f"model={U32R} amount={U63R}",
    "SetInferencePrice": f"model={U32R} price_per_row={U63R}",
    "Infer": f"model={U32R} version|={U32R} inputs=len_0..1048576 max_price|={U63R}",
    "PostBounty": f"model={U32R} dataset={U32R} target_loss={U32R} amount={U63R} expires_at={U32R}",
    "ClaimBounty": f"bounty={U32R} version={U32R}",
    "CancelBounty": f"bounty={U32R}",
    "RegisterDataset": (
        f"name=len_1..64 features={U32R} kind=/^(classification|regression)$/ outputs={U32R} row_count={U32R} "
        f"rows_root={HASH} price_per_row={U63R} license=len_0..4096"
    ),
    "AppendRows": f"dataset={U32R} first_row={U32R} rows=len_0..1048576",
    "SetDatasetLicense": (
        f"dataset={U32R} terms.price_per_row={U63R} terms.asset|={U32R} terms.allowed=/^(anyone|accounts|models)$/ "
        f"terms.accounts=len_0..64 terms.accounts[]={HASH} terms.models=len_0..64 terms.models[]={U32R} "
        f"terms.expires_at|={U32R} terms.max_rows_per_job|={U32R} terms.text_hash={HASH}"
    ),
    "Train": " ".join(f"{f}={U32R}" for f in ("model", "dataset", "steps", "batch_size", "lr", "l2", "segment_len", "from_version|"))
    + f" max_model_license|={U63R} max_data_license|={U63R} data_license_asset|={U32R}",
    "Bond": f"value={U63R}",
    "Unbond": f"value={U63R}",
    "CreateAsset": f"asset={U32R} min_balance={U63R}",
    "SetAssetMetadata": f"asset={U32R} name=len_1..64 symbol=/^[A-Za-z0-9]{{1,16}}$/ decimals=0..18",
    "MintAsset": f"asset={U32R} beneficiary={HASH} amount={U63R}",
    "BurnAsset": f"asset={U32R} who={HASH} amount={U63R}",
    "TransferAsset": f"asset={U32R} dest={HASH} amount={U63R}",
    "ReportFraud": "proof=len_0..2097152",
    "ReportEquivocation": "first=len_0..1024 second=len_0..1024",
    "ReportVoteEquivocation": "first=len_0..256 second=len_0..256",
    "ProposePolicy": f"model={U32R} permission=/^(owner|allowlist|anyone|proposal)$/ license_per_step={U63R}",
    "ProposeInferencePrice": f"model={U32R} price_per_row={U63R}",
    "ProposeRelease": f"model={U32R} version={U32R}",
    "ProposeSpend": f"model={U32R} dest={HASH} amount={U63R}",
    "ProposeTrainer": f"model={U32R} who={HASH}",
    "ProposeParams": (
        f"model={U32R} quorum=0..1000000 threshold=0..1000000 voting_blocks={U32R} enactment_blocks={U32R} "
        "treasury=0..1000000"
    ),
    "Vote": f"proposal={U32R}",
    "OpenRound": f"model={U32R} base_version={U32R} allowlist=len_0..64 allowlist[]={HASH} " + " ".join(
        f"{f}={U32R}" for f in ("local_steps", "batch_size", "lr", "l2", "segment_len", "samples", "min_updates", "max_updates")
    ) + f" bond={U63R} reward_pool={U63R} commit_deadline={U32R} reveal_deadline={U32R}",
    "CommitUpdate": (
        f"round={U32R} data_root={HASH} row_count={U32R} sample_count={U32R} weights=len_0..1048576 "
        f"transcript_root={HASH} losses=len_0..65536 losses[]={U32R} first_path=len_0..32 first_path[]={HASH} "
        f"last_path=len_0..32 last_path[]={HASH} dataset|={U32R} max_data_license|={U63R} data_license_asset|={U32R}"
    ),
    "ChallengeRound": f"round={U32R}",
    "RevealSegment": (
        f"round={U32R} segment={U32R} weights=len_0..1048576 start_path=len_0..32 start_path[]={HASH} "
        f"end_hash={HASH} end_path=len_0..32 end_path[]={HASH} rows=len_0..1048576 row_paths=len_0..65536 "
        f"row_paths[]=len_0..32 row_paths[][]={HASH}"
    ),
    "CloseRound": f"round={U32R}",
    "ProposeConfig": f"changes=len_0..32 changes[].name=/^[a-z][a-z0-9_]{{0,63}}$/ changes[].value={U63R}",
    "VoteConfig": f"referendum={U32R} amount={U63R}",
    "UnlockVote": f"referendum={U32R}",
    "NoteVotes": _VOTE,
}.items():
    _pin(_call, _spec)

# A value each pattern accepts, and the first one past it.
_PATTERN_SAMPLES = {
    "^(owner|allowlist|anyone|proposal)$": ("proposal", "owners"),
    "^(classification|regression)$": ("regression", "Regression"),
    "^(anyone|accounts|models)$": ("models", "model"),
    "^[A-Za-z0-9]{1,16}$": ("Z" * 16, "Z" * 17),
    "^[a-z][a-z0-9_]{0,63}$": ("a" + "_" * 63, "a" + "_" * 64),
}


def _strip(hint: Any) -> tuple[list[msgspec.Meta], Any]:
    metas: list[msgspec.Meta] = []
    while hasattr(hint, "__metadata__"):
        metas += [m for m in hint.__metadata__ if isinstance(m, msgspec.Meta)]
        hint = typing.get_args(hint)[0]
    return metas, hint


def _optional(base: Any) -> Any:
    """X of ``X | None``, else None."""
    args = typing.get_args(base)
    if typing.get_origin(base) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return args[0] if args[1] is type(None) else args[1]
    return None


def _describe(meta: msgspec.Meta) -> str:
    if meta.pattern is not None:
        return f"/{meta.pattern}/"
    if meta.ge is not None or meta.le is not None:
        return f"{meta.ge}..{meta.le}"
    return f"len {meta.min_length or 0}..{meta.max_length}"


def _declared(hint: Any, path: str, out: dict[str, str]) -> None:
    metas, base = _strip(hint)
    if metas:
        out[path] = " ".join(_describe(m) for m in metas)
    if (inner := _optional(base)) is not None:
        _declared(inner, path + "|", out)
    elif typing.get_origin(base) is tuple:
        _declared(typing.get_args(base)[0], path + "[]", out)
    elif isinstance(base, type) and issubclass(base, msgspec.Struct):
        hints = typing.get_type_hints(base, include_extras=True)
        for name in base.__struct_fields__:
            _declared(hints[name], f"{path}.{name}", out)
    elif base in (int, bytes, str) and not metas:
        out[path] = "UNBOUNDED"


CALL_TYPES = {typ.__name__: typ for typ in typing.get_args(calls.Call)}


def test_every_argument_bound_is_pinned() -> None:
    declared: dict[str, str] = {}
    for name, typ in CALL_TYPES.items():
        hints = typing.get_type_hints(typ, include_extras=True)
        for field in typ.__struct_fields__:
            _declared(hints[field], f"{name}.{field}", declared)
    assert declared == BOUNDS


def _minimal(hint: Any) -> Any:
    """The smallest value a hint admits, as MessagePack builtins."""
    metas, base = _strip(hint)
    bound = metas[0] if metas else msgspec.Meta()
    if _optional(base) is not None:
        return None
    if typing.get_origin(base) is tuple:
        return [_minimal(typing.get_args(base)[0])] * (bound.min_length or 0)
    if isinstance(base, type) and issubclass(base, msgspec.Struct):
        hints = typing.get_type_hints(base, include_extras=True)
        tag = base.__struct_config__.tag
        return ([tag] if tag is not None else []) + [_minimal(hints[f]) for f in base.__struct_fields__]
    if base is bool:
        return False
    if base is int:
        return bound.ge or 0
    if base is bytes:
        return bytes(bound.min_length or 0)
    assert base is str, base
    if bound.pattern is not None:
        return _PATTERN_SAMPLES[bound.pattern][0]
    return "a" * (bound.min_length or 0)


def _hint_at(typ: Any, steps: list[str]) -> Any:
    hint: Any = typ
    for step in steps:
        _, base = _strip(hint)
        if step == "|":
            hint = _optional(base)
        elif step == "[]":
            hint = typing.get_args(base)[0]
        else:
            hint = typing.get_type_hints(base, include_extras=True)[step]
    return hint


def _steps(path: str) -> list[str]:
    return re.findall(r"\[\]|\||[A-Za-z_][A-Za-z0-9_]*", path)


def _with(typ: Any, steps: list[str], value: Any) -> tuple[list[Any], str]:
    """The minimal call of ``typ`` with ``value`` at ``steps``, and msgspec's location of it."""
    root = _minimal(typ)
    holder: Any = [root]  # the slot that holds the value of ``hint``: holder[key]
    key: Any = 0
    where, hint = "$", typ
    for step in steps:
        _, base = _strip(hint)
        if step == "|":  # an Optional's value sits in its slot
            hint = _optional(base)
            continue
        current = holder[key]
        if step == "[]":
            hint = typing.get_args(base)[0]
            current.append(_minimal(hint))
            holder, key = current, len(current) - 1
        else:
            hint = typing.get_type_hints(base, include_extras=True)[step]
            holder, key = current, base.__struct_fields__.index(step) + (base.__struct_config__.tag is not None)
        where += f"[{key}]"
    holder[key] = value
    return root, where


def _edges(hint: Any) -> list[tuple[Any, Any, str]]:
    """(value on the edge, value past it, msgspec's reason) for each edge of the bound."""
    metas, base = _strip(hint)
    meta = metas[0]
    if meta.pattern is not None:
        inside, outside = _PATTERN_SAMPLES[meta.pattern]
        return [(inside, outside, f"Expected `str` matching regex {meta.pattern!r}")]
    if meta.le is not None:
        return [
            (meta.le, meta.le + 1, f"Expected `int` <= {meta.le}"),
            (meta.ge, meta.ge - 1, f"Expected `int` >= {meta.ge}"),
        ]
    kind = {bytes: "bytes", str: "str"}.get(base, "array")
    item = _minimal(typing.get_args(base)[0]) if kind == "array" else None

    def of(n: int) -> Any:
        return bytes(n) if kind == "bytes" else "é" * n if kind == "str" else [item] * n

    edges = [(of(meta.max_length), of(meta.max_length + 1), f"Expected `{kind}` of length <= {meta.max_length}")]
    if meta.min_length:
        edges.append((of(meta.min_length), of(meta.min_length - 1), f"Expected `{kind}` of length >= {meta.min_length}"))
    return edges


@pytest.mark.parametrize("path", sorted(BOUNDS))
def test_each_bound_holds_at_its_edges(path: str) -> None:
    call, _, rest = path.partition(".")
    typ = CALL_TYPES[call]
    steps = _steps(rest)
    for inside, outside, why in _edges(_hint_at(typ, steps)):
        good, where = _with(typ, steps, inside)
        raw = msgspec.msgpack.encode(good)
        assert encode(decode(raw, calls.Call)) == raw
        bad, _ = _with(typ, steps, outside)
        with pytest.raises(CodecError) as info:
            decode(msgspec.msgpack.encode(bad), calls.Call)
        named = rest.replace("|", "").replace("[]", "[0]")  # the place by its fields' names (D3, round 15)
        assert str(info.value).endswith(f": {why} - at `{where}` ({named})"), (path, str(info.value))
