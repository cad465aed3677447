"""The wire layer: canonical codec, keys and addresses, calls, signed extrinsics, headers."""

from __future__ import annotations

import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain import calls
from chain.codec import decode, decode_versioned, encode, encode_versioned, encode_versioned_each
from chain.crypto import (
    Keypair,
    blake2_256,
    compute_seed_from_uri,
    dev_keypair,
    parse_account,
    ss58_decode,
    ss58_encode,
)
from chain.errors import (
    CodecError,
    InvalidAddress,
    InvalidKey,
    InvalidSignature,
    InvalidTransaction,
)
from chain.extrinsic import IMMORTAL, Era, SigningPayload, decode_extrinsic, sign_extrinsic
from chain.header import (
    SEAL_DOMAIN,
    Header,
    PolCommitment,
    compute_pol_digest,
    compute_seal_message,
    seal_header,
    verify_seal,
)

GENESIS = blake2_256(b"test genesis")
ALICE, BOB = dev_keypair("Alice"), dev_keypair("Bob")


def _xt(call=None, nonce=0, tip=0, era=IMMORTAL, key=ALICE):
    call = call or calls.Transfer(BOB.public, 10)
    return sign_extrinsic(key, call, nonce=nonce, genesis_hash=GENESIS, spec_version=1, tip=tip, era=era)


# --- codec -----------------------------------------------------------------------------------
@given(dest=st.binary(min_size=32, max_size=32), value=st.integers(0, 2**63 - 1))
def test_calls_round_trip_canonically(dest: bytes, value: int) -> None:
    call = calls.Transfer(dest, value)
    raw = encode(call)
    assert decode(raw, calls.Call) == call
    assert encode(decode(raw, calls.Call)) == raw


def test_non_canonical_bytes_are_refused() -> None:
    raw = encode(calls.Remark(b"hi"))
    # The tag 0 as a 1-byte positive fixint re-encoded as a uint32: same value, other bytes.
    padded = raw[:1] + b"\xce\x00\x00\x00\x00" + raw[2:]
    with pytest.raises(CodecError, match="canonical"):
        decode(padded, calls.Call)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),
        (encode([99 * 256, b"x"]), "Invalid value"),  # unknown call index
        (encode([256, b"short", 5]), "length"),  # a 5-byte account id
        (encode([256, bytes(32), -1]), ">= 0"),  # negative balance
        (encode([256, bytes(32), 1, 2]), "at most length"),  # an extra field
    ],
)
def test_malformed_calls_get_specific_errors(raw: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode(raw, calls.Call)


def test_versioned_encoding_refuses_other_versions() -> None:
    raw = encode_versioned(calls.Remark(b""))
    with pytest.raises(CodecError, match="unknown codec version 7"):
        decode_versioned(b"\x07" + raw[1:], calls.Remark)


# --- crypto ----------------------------------------------------------------------------------
def test_dev_accounts_are_deterministic_and_distinct() -> None:
    names = ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"]
    publics = {dev_keypair(n).public for n in names}
    assert len(publics) == 6
    assert dev_keypair("Alice").public == Keypair.from_uri("//Alice").public
    assert compute_seed_from_uri("//Alice//stash") != compute_seed_from_uri("//Alice")


def test_ss58_round_trip_and_checksum() -> None:
    address = ss58_encode(ALICE.public)
    assert address.startswith("5")  # prefix 42 addresses start with 5, as Substrate's
    assert ss58_decode(address) == ALICE.public
    assert parse_account(address) == parse_account("0x" + ALICE.public.hex()) == parse_account("//Alice")
    broken = address[:-1] + ("A" if address[-1] != "A" else "B")
    with pytest.raises(InvalidAddress, match="checksum"):
        ss58_decode(broken)
    with pytest.raises(InvalidAddress, match="base58"):
        ss58_decode("0OIl")
    with pytest.raises(InvalidAddress, match="prefix"):
        ss58_decode(ss58_encode(ALICE.public, prefix=0))


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=4))
def test_base58_two_digits_a_division_is_base58(body: bytes, zeros: int) -> None:
    """chain.crypto._b58encode takes two digits a division; the textbook digit a division
    (Bitcoin's base58, leading zero bytes as "1"s) gives the same text, which decodes back."""
    from chain.crypto import _B58, _b58decode, _b58encode

    data = bytes(zeros) + body
    n, digits = int.from_bytes(data, "big"), ""
    while n:
        n, r = divmod(n, 58)
        digits = _B58[r] + digits
    text = "1" * (len(data) - len(data.lstrip(b"\0"))) + digits
    assert _b58encode(data) == text and _b58decode(text) == data


def test_bad_secrets_are_refused() -> None:
    with pytest.raises(InvalidKey, match="32 bytes"):
        Keypair.from_uri("0x1234")
    with pytest.raises(InvalidKey, match="not hex"):
        Keypair.from_uri("0x" + "zz" * 32)
    with pytest.raises(InvalidKey, match="empty junction"):
        Keypair.from_uri("//Alice//")  # Substrate reads "//Alice////" as the password "/"


# --- extrinsics ------------------------------------------------------------------------------
def test_extrinsic_round_trip_and_signature() -> None:
    xt = _xt(nonce=3, tip=7, era=Era(10, 64))
    again = decode_extrinsic(xt.encode())
    assert again == xt and again.hash() == xt.hash()
    again.verify_signature(GENESIS, 1)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda xt: xt.__class__(xt.signer, xt.signature, xt.nonce + 1, xt.tip, xt.era, xt.call),
        lambda xt: xt.__class__(xt.signer, xt.signature, xt.nonce, xt.tip + 1, xt.era, xt.call),
        lambda xt: xt.__class__(xt.signer, xt.signature, xt.nonce, xt.tip, Era(0, 5), xt.call),
        lambda xt: xt.__class__(xt.signer, xt.signature, xt.nonce, xt.tip, xt.era, calls.Transfer(BOB.public, 11)),
        lambda xt: xt.__class__(BOB.public, xt.signature, xt.nonce, xt.tip, xt.era, xt.call),
    ],
)
def test_any_change_breaks_the_signature(tamper) -> None:
    with pytest.raises(InvalidTransaction, match="bad ed25519 signature") as info:
        tamper(_xt()).verify_signature(GENESIS, 1)
    assert info.value.reason == "bad_proof"


def test_signature_binds_chain_and_spec_version() -> None:
    xt = _xt()
    with pytest.raises(InvalidTransaction):
        xt.verify_signature(blake2_256(b"another chain"), 1)
    with pytest.raises(InvalidTransaction):
        xt.verify_signature(GENESIS, 2)


def _payload_bytes(xt) -> bytes:
    return encode(SigningPayload(xt.call, xt.nonce, xt.tip, xt.era, GENESIS, 1))


def _signs(message: bytes, xt) -> bool:
    """Whether xt's signature is the signer's ed25519 signature of ``message`` (PyNaCl)."""
    try:
        nacl.signing.VerifyKey(xt.signer).verify(message, xt.signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def _remark_with_payload_of(size: int):
    """An extrinsic whose signing payload encodes to exactly ``size`` bytes."""
    base = len(_payload_bytes(_xt(calls.Remark(b""))))
    for extra in range(size - base - 4, size - base + 1):  # the length prefix grows by 0..3 bytes
        xt = _xt(calls.Remark(b"x" * extra))
        if len(_payload_bytes(xt)) == size:
            return xt
    raise AssertionError(f"no remark gives a {size}-byte payload")


def test_large_payloads_are_signed_through_their_hash() -> None:
    """Substrate signs blake2_256(payload) when the payload is over 256 bytes, else the payload.

    The signature must verify against exactly that message and NOT against the other one,
    so a signer and verifier that both skip (or both always apply) the hashing are caught.
    """
    for xt in (_xt(calls.Remark(b"x" * 1000)), _remark_with_payload_of(257)):
        raw = _payload_bytes(xt)
        assert len(raw) > 256
        assert _signs(blake2_256(raw), xt) and not _signs(raw, xt)
        decode_extrinsic(xt.encode()).verify_signature(GENESIS, 1)
    for xt in (_xt(), _remark_with_payload_of(256)):
        raw = _payload_bytes(xt)
        assert len(raw) <= 256
        assert _signs(raw, xt) and not _signs(blake2_256(raw), xt)
        decode_extrinsic(xt.encode()).verify_signature(GENESIS, 1)


def test_era_mortality() -> None:
    era = Era(100, 64)
    assert not era.is_alive(99) and era.is_alive(100) and era.is_alive(163) and not era.is_alive(164)
    assert Era(0, 0).is_alive(10**9)


def test_oversize_and_malformed_extrinsics() -> None:
    with pytest.raises(InvalidTransaction, match="limit"):
        decode_extrinsic(b"\x01" + b"\0" * (3 * 1024 * 1024))
    raw = _xt().encode()
    with pytest.raises(CodecError):
        decode_extrinsic(raw[:-3])
    with pytest.raises(CodecError):
        decode_extrinsic(raw + b"\0")


# --- calls in JSON ---------------------------------------------------------------------------
def test_call_json_round_trip_keeps_float32_bits() -> None:
    call = calls.call_from_json(
        {"pallet": "training", "call": "train",
         "args": {"model": 0, "dataset": 0, "steps": 100, "batch_size": 32, "lr": 0.1, "l2": 0.0001, "segment_len": 10}}
    )
    assert isinstance(call, calls.Train)
    assert call.lr == 0x3DCCCCCD  # float32(0.1)
    assert calls.call_from_json(calls.call_to_json(call)) == call


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"pallet": "balances"}, "pallet"),
        ({"pallet": "nope", "call": "x"}, "unknown call nope.x"),
        ({"pallet": "balances", "call": "transfer", "args": {"value": 1}}, "missing arguments \\['dest'\\]"),
        ({"pallet": "balances", "call": "transfer", "args": {"dest": "//Bob", "value": 1, "memo": 2}}, "unknown arguments"),
        ({"pallet": "balances", "call": "transfer", "args": {"dest": "xyz", "value": 1}}, "argument 'dest'"),
        ({"pallet": "system", "call": "remark", "args": {"data": "abcd"}}, "0x-prefixed"),
    ],
)
def test_call_json_errors(obj, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        calls.call_from_json(obj)


# --- headers ---------------------------------------------------------------------------------
def test_header_seal_and_commitment() -> None:
    commitment = PolCommitment(bytes(32), 100, 5000)
    header = Header(bytes(32), 1, bytes(32), bytes(32), 5, ALICE.public, (compute_pol_digest(commitment),))
    genesis = b"\x07" * 32
    sealed = seal_header(ALICE, genesis, header)
    assert sealed.pre_hash() == header.pre_hash() and sealed.hash() != header.hash()
    assert sealed.get_pol_commitment() == commitment
    # The seal signs the domain, the chain's genesis hash and the pre-hash, in that order.
    assert compute_seal_message(genesis, sealed) == SEAL_DOMAIN + genesis + header.pre_hash()
    assert ALICE.sign(SEAL_DOMAIN + genesis + header.pre_hash()) == sealed.seal
    verify_seal(genesis, sealed)
    for other in (b"\x08" * 32, bytes(32)):
        with pytest.raises(InvalidSignature):
            verify_seal(other, sealed)
    for bad in (b"", genesis[:31], bytearray(genesis)):
        with pytest.raises(ValueError, match="a seal names a 32-byte genesis hash"):
            compute_seal_message(bad, header)  # type: ignore[arg-type]


def test_a_key_of_the_wrong_length_is_a_bad_signature_not_a_bad_address() -> None:
    """verify_signature's refusal is InvalidSignature whatever the key (building its message
    used to raise InvalidAddress for a key that is not 32 bytes)."""
    from chain.crypto import verify_signature
    from chain.errors import InvalidSignature

    for key in (bytes(31), bytes(33), b""):
        with pytest.raises(InvalidSignature, match=f"a {len(key)}-byte key"):
            verify_signature(key, b"message", bytes(64))


def test_encode_versioned_each_is_encode_versioned_of_each() -> None:
    xts = [_xt(calls.Remark(bytes(i)), nonce=i * 300, tip=i, era=Era(i, 2 * i) if i else IMMORTAL) for i in range(5)]
    assert encode_versioned_each(xts) == [encode_versioned(xt) for xt in xts] == [xt.encode() for xt in xts]
    assert encode_versioned_each([]) == []


def test_every_wire_object_is_immutable_all_the_way_down_and_untracked_by_the_gc() -> None:
    """chain.codec.Wire is ``gc=False``: safe only while no wire object can be part of a
    reference cycle, which holds while every field of every subclass is immutable. A list,
    dict or set field (or an untyped one) would let one refer to itself: this test names it."""
    import gc
    import importlib
    import pkgutil
    import types
    import typing

    import msgspec

    import chain
    import consensus
    import genesis
    import node
    import rpc
    from chain.codec import Wire

    for package in (chain, consensus, genesis, node, rpc):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    classes: list[type] = []
    pending = [Wire]
    while pending:
        for sub in pending.pop().__subclasses__():
            classes.append(sub)
            pending.append(sub)
    assert len(classes) > 90
    def immutable(t: object) -> bool:
        if t in (bytes, int, str, float, bool, type(None)):
            return True
        if t is msgspec.Raw:  # already-encoded bytes (a served block): a buffer, no references
            return True
        if isinstance(t, type) and issubclass(t, Wire):
            return True  # checked in its own right
        origin, args = typing.get_origin(t), typing.get_args(t)
        if origin is typing.Annotated:
            return immutable(args[0])
        if origin in (tuple, typing.Union, types.UnionType):
            return all(arg is Ellipsis or immutable(arg) for arg in args)
        return origin is typing.Literal

    mutable = [
        f"{cls.__module__}.{cls.__name__}.{f.name}: {f.type!r}"
        for cls in classes
        for f in msgspec.structs.fields(cls)
        if not immutable(f.type)
    ]
    assert mutable == []
    assert all(cls.__struct_config__.frozen and not cls.__struct_config__.gc for cls in classes)
    header = Header(bytes(32), 1, bytes(32), bytes(32), 1, bytes(32), (compute_pol_digest(PolCommitment(bytes(32), 0, 0)),))
    assert not gc.is_tracked(header) and not gc.is_tracked(decode_versioned(header.encode(), Header))
