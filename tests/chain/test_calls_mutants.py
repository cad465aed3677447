"""Mutation testing of chain/calls.py: the call indices and the JSON form of calls.

Run by name (``mutmut run "chain.calls.*"``; the module is in ``[tool.mutmut] only_mutate``).
The argument bounds are declarations, which mutmut does not mutate: tests/chain/test_calls_bounds.py
pins them. What mutmut mutates here is the JSON form (``call_from_json`` for the CLI and the
genesis spec, ``call_to_json`` for the RPC's view of governance proposals) and the two float32
conversions: these tests pin its exact output and each refusal's exact message.

Equivalent survivors (10 of 295):
- ``_struct_type``'s unwrapping of ``Annotated`` (5 mutants: the branch never taken, ``[1]``
  for ``[0]``, ``hasattr`` of another name or of None): no call wraps a struct in
  ``Annotated``, so an annotated hint is never a struct, unwrapped or not.
- ``zip(..., strict=True)`` in ``_struct_values`` as ``strict=False``, ``None`` or left out
  (3): the two sequences zipped are the last ``len(defaults)`` fields and the defaults, the
  same length by construction.
- ``typing.cast(None, ...)`` for ``typing.cast(Call, ...)``: cast does nothing at run time.
- ``msgspec.convert(...)`` without ``strict=True``: strict is convert's default.
"""

from __future__ import annotations

import pytest

from chain import calls
from chain.crypto import dev_keypair, ss58_encode
from chain.errors import CodecError

BOB = dev_keypair("Bob").public
ALICE = dev_keypair("Alice").public
HASH = bytes(range(32))


def _refusal(obj: object) -> str:
    with pytest.raises(CodecError) as info:
        calls.call_from_json(obj)
    return str(info.value)


def test_a_hash_argument_is_hex_in_json_not_an_account() -> None:
    """``Hash32`` and ``AccountId`` were one object (typing caches ``Annotated`` by its
    arguments, and both were 32-byte bytes), so ``_kind``'s ``hint is AccountId`` took every
    hash for an account: a data set's ``text_hash`` went out as an SS58 address, and a rows
    root could be given as ``//Alice``. Now a hash is 0x-hex both ways, as the module says of
    bytes, and an account is SS58."""
    terms = calls.LicenseTerms(5, None, "accounts", (BOB,), (1, 2), 9, None, HASH)
    as_json = calls.call_to_json(calls.SetDatasetLicense(3, terms))
    assert as_json == {
        "pallet": "datasets",
        "call": "set_license",
        "args": {
            "dataset": 3,
            "terms": {
                "price_per_row": 5, "asset": None, "allowed": "accounts", "accounts": [ss58_encode(BOB)],
                "models": [1, 2], "expires_at": 9, "max_rows_per_job": None, "text_hash": "0x" + HASH.hex(),
            },
        },
    }
    assert calls.call_from_json(as_json) == calls.SetDatasetLicense(3, terms)
    register = {
        "pallet": "datasets", "call": "register_dataset",
        "args": {"name": "d", "features": 2, "kind": "regression", "outputs": 1, "row_count": 4, "rows_root": "//Alice",
                 "price_per_row": 0, "license": ""},
    }
    assert _refusal(register) == "argument 'rows_root': bytes are 0x-prefixed hex"


def test_call_indices_are_pallet_times_256_plus_call() -> None:
    assert [calls._tag(0, 0), calls._tag(1, 0), calls._tag(3, 2), calls._tag(11, 0)] == [0, 256, 770, 2816]
    assert calls.Transfer.__struct_config__.tag == 256 and calls.SetDatasetLicense.__struct_config__.tag == 770


def test_float32_conversions_are_exact_and_little_endian() -> None:
    assert calls.compute_f32_bits(0.1) == 0x3DCCCCCD and calls.compute_f32_bits(-0.0) == 0x80000000
    assert calls.compute_f32_bits(1.0) == 0x3F800000 and calls.compute_f32_bits(2.0**-149) == 1
    assert calls.compute_f32_value(0x3DCCCCCD) == 0.10000000149011612
    assert calls.compute_f32_value(0x3F800000) == 1.0 and calls.compute_f32_value(1) == 2.0**-149


def test_the_json_form_of_each_kind_of_argument() -> None:
    """Accounts as SS58, bytes as 0x-hex, float32 bits as the number, tuples as arrays,
    nested structs as objects, None as null, everything else as it is."""
    train = calls.Train(1, 2, 100, 32, 0x3DCCCCCD, 0, 10, None)
    assert calls.call_to_json(train) == {
        "pallet": "training", "call": "train",
        "args": {"model": 1, "dataset": 2, "steps": 100, "batch_size": 32, "lr": 0.10000000149011612, "l2": 0.0,
                 "segment_len": 10, "from_version": None, "max_model_license": None, "max_data_license": None, "data_license_asset": None},
    }
    assert calls.call_to_json(calls.Transfer(BOB, 10)) == {
        "pallet": "balances", "call": "transfer", "args": {"dest": ss58_encode(BOB), "value": 10},
    }
    assert calls.call_to_json(calls.Remark(b"\x01\xff")) == {"pallet": "system", "call": "remark", "args": {"data": "0x01ff"}}
    change = calls.ProposeConfig((calls.ConfigChange("base_fee", 3), calls.ConfigChange("z", 0)))
    assert calls.call_to_json(change) == {
        "pallet": "democracy", "call": "propose",
        "args": {"changes": [{"name": "base_fee", "value": 3}, {"name": "z", "value": 0}]},
    }
    assert calls.call_to_json(calls.WithdrawUnbonded()) == {"pallet": "staking", "call": "withdraw_unbonded", "args": {}}


def test_json_is_read_back_kind_by_kind() -> None:
    assert calls.call_from_json({"pallet": "gov", "call": "vote", "args": {"proposal": 1, "aye": True}}) == calls.Vote(1, True)
    assert calls.call_from_json({"pallet": "staking", "call": "withdraw_unbonded"}) == calls.WithdrawUnbonded()
    assert calls.call_from_json({"pallet": "system", "call": "remark", "args": {"data": "0x01FF"}}) == calls.Remark(b"\x01\xff")
    assert calls.call_from_json(
        {"pallet": "balances", "call": "transfer", "args": {"dest": "//Bob", "value": 10}}
    ) == calls.Transfer(BOB, 10)
    assert calls.call_from_json(
        {"pallet": "balances", "call": "transfer", "args": {"dest": "0x" + ALICE.hex(), "value": 0}}
    ) == calls.Transfer(ALICE, 0)
    train = {"pallet": "training", "call": "train",
             "args": {"model": 1, "dataset": 2, "steps": 100, "batch_size": 32, "lr": 1, "l2": 0.1, "segment_len": 10}}
    assert calls.call_from_json(train) == calls.Train(1, 2, 100, 32, 0x3F800000, 0x3DCCCCCD, 10, None)
    train["args"]["from_version"] = 4  # type: ignore[index]
    assert calls.call_from_json(train) == calls.Train(1, 2, 100, 32, 0x3F800000, 0x3DCCCCCD, 10, 4)
    propose = {"pallet": "democracy", "call": "propose", "args": {"changes": [{"name": "base_fee", "value": 3}]}}
    assert calls.call_from_json(propose) == calls.ProposeConfig((calls.ConfigChange("base_fee", 3),))
    terms = {"price_per_row": 5, "accounts": ["//Bob", "0x" + ALICE.hex()], "models": [7]}
    license_call = calls.call_from_json({"pallet": "datasets", "call": "set_license", "args": {"dataset": 3, "terms": terms}})
    assert license_call == calls.SetDatasetLicense(3, calls.LicenseTerms(5, None, "anyone", (BOB, ALICE), (7,), None, None, bytes(32)))


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([], 'a call is {"pallet": ..., "call": ..., "args": {...}}'),
        ({"pallet": "balances"}, 'a call is {"pallet": ..., "call": ..., "args": {...}}'),
        ({"call": "transfer"}, 'a call is {"pallet": ..., "call": ..., "args": {...}}'),
        ({"pallet": "balances", "call": "nope"}, "unknown call balances.nope"),
        ({"pallet": "balances", "call": "transfer", "args": []}, "balances.transfer: args must be an object"),
        ({"pallet": "balances", "call": "transfer", "args": {"value": 1}}, "balances.transfer: missing arguments ['dest']"),
        ({"pallet": "balances", "call": "transfer", "args": {}}, "balances.transfer: missing arguments ['dest', 'value']"),
        ({"pallet": "balances", "call": "transfer", "args": {"dest": "//Bob", "value": 1, "zz": 0, "memo": 2}},
         "balances.transfer: unknown arguments ['memo', 'zz']"),
        ({"pallet": "balances", "call": "transfer", "args": {"dest": "//Bob", "value": 2**63}},
         "balances.transfer: Expected `int` <= 9223372036854775807 - at `$[2]` (value)"),
        ({"pallet": "balances", "call": "transfer", "args": {"dest": "//Bob", "value": "5"}},
         "balances.transfer: Expected `int`, got `str` - at `$[2]` (value)"),
        ({"pallet": "balances", "call": "transfer", "args": {"dest": "//Bob", "value": True}},
         "balances.transfer: Expected `int`, got `bool` - at `$[2]` (value)"),
        ({"pallet": "balances", "call": "transfer", "args": {"dest": 5, "value": 1}},
         "balances.transfer: Expected `bytes`, got `int` - at `$[1]` (dest)"),
        ({"pallet": "system", "call": "remark", "args": {"data": "abcd"}}, "argument 'data': bytes are 0x-prefixed hex"),
        ({"pallet": "system", "call": "remark", "args": {"data": "0xabc"}},
         "argument 'data': non-hexadecimal number found in fromhex() arg at position 3"),
        ({"pallet": "training", "call": "train",
          "args": {"model": 1, "dataset": 2, "steps": 1, "batch_size": 1, "lr": 1e39, "l2": 0, "segment_len": 1}},
         "argument 'lr': float too large to pack with f format"),
        ({"pallet": "training", "call": "train",
          "args": {"model": 1, "dataset": 2, "steps": 1, "batch_size": 1, "lr": True, "l2": 0, "segment_len": 1}},
         "training.train: Expected `int`, got `bool` - at `$[5]` (lr)"),
        # A value of the wrong shape is passed on as it is, for msgspec to name.
        ({"pallet": "balances", "call": "transfer", "args": {"dest": {"a": 1}, "value": 1}},
         "balances.transfer: Expected `bytes`, got `object` - at `$[1]` (dest)"),
        ({"pallet": "balances", "call": "transfer", "args": {"dest": "//Bob", "value": [1]}},
         "balances.transfer: Expected `int`, got `array` - at `$[2]` (value)"),
        ({"pallet": "datasets", "call": "set_license", "args": {"dataset": 3, "terms": 5}},
         "datasets.set_license: Expected `array`, got `int` - at `$[2]` (terms)"),
        ({"pallet": "datasets", "call": "set_license", "args": {"dataset": 3, "terms": {"price_per_row": 1, "accounts": "abc"}}},
         "datasets.set_license: Expected `array`, got `str` - at `$[2][3]` (terms.accounts)"),
        ({"pallet": "datasets", "call": "set_license", "args": {"dataset": 3, "terms": {"price_per_row": 1, "accounts": ["xyz"]}}},
         "argument 'accounts': 'xyz' is not a 32-byte SS58 address (decoded 3 bytes)"),
        ({"pallet": "datasets", "call": "set_license", "args": {"dataset": 3, "terms": {"models": [1]}}},
         "argument 'terms': missing arguments ['price_per_row']"),
        ({"pallet": "datasets", "call": "set_license", "args": {"dataset": 3, "terms": {"price_per_row": 1, "x": 1}}},
         "argument 'terms': unknown arguments ['x']"),
    ],
)
def test_each_refusal_of_the_json_form_is_exact(obj: object, reason: str) -> None:
    assert _refusal(obj) == reason


def test_a_bad_account_names_its_argument() -> None:
    reason = _refusal({"pallet": "balances", "call": "transfer", "args": {"dest": "xyz", "value": 1}})
    assert reason == "argument 'dest': 'xyz' is not a 32-byte SS58 address (decoded 3 bytes)"
