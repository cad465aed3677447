"""Mutation testing of chain/calls.py: the call indices and the JSON form of calls.

Run by name (``mutmut run "chain.calls.*"``; the module is in ``[tool.mutmut] only_mutate``).
The argument bounds are declarations, which mutmut does not mutate: tests/chain/test_calls_bounds.py
pins them. What mutmut mutates here is the JSON form (``call_from_json`` for the CLI and the
genesis spec, ``call_to_json`` for the RPC's view of governance proposals) and the two float32
conversions: these tests pin its exact output and each refusal's exact message.
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
