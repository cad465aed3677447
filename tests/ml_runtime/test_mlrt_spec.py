"""ModelSpec: validation, canonical encoding, hash."""

from __future__ import annotations

import pytest

from ml_runtime import InvalidSpec, ModelSpec


@pytest.mark.parametrize(
    ("spec", "params"),
    [
        (ModelSpec("linear", 3, 2), 8),
        (ModelSpec("softmax", 64, 10), 650),
        (ModelSpec("mlp", 64, 10, 32), 64 * 32 + 32 + 32 * 10 + 10),
    ],
)
def test_param_count_and_roundtrip(spec: ModelSpec, params: int) -> None:
    assert spec.param_count == params
    enc = spec.encode()
    assert len(enc) == 14 and enc[0] == 1
    assert ModelSpec.decode(enc) == spec
    assert len(spec.hash()) == 32


def test_encoding_is_pinned() -> None:
    assert ModelSpec("mlp", 64, 10, 32).encode().hex() == "0102400000000a00000020000000"


def test_distinct_specs_distinct_hashes() -> None:
    specs = [ModelSpec("linear", 4, 3), ModelSpec("softmax", 4, 3), ModelSpec("mlp", 4, 3, 1)]
    assert len({s.hash() for s in specs}) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("conv", 4, 3), "unknown model family"),
        (("linear", 0, 3), "input dimension d=0"),
        (("linear", 4097, 3), "input dimension d=4097"),
        (("softmax", 4, 1), "classes k=1"),
        (("linear", 4, 0), "outputs k=0"),
        (("mlp", 4, 3, 0), "hidden width h=0"),
        (("softmax", 4, 3, 2), "must be 0"),
        (("linear", 4096, 4096), "exceed the limit"),
        (("linear", 4.0, 3), "must be an int"),
        (("linear", True, 3), "must be an int"),
    ],
)
def test_invalid_specs(args: tuple, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        ModelSpec(*args)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "has 0 bytes"),
        (bytes.fromhex("0102400000000a0000002000000000"), "has 15 bytes"),
        (bytes.fromhex("0202400000000a00000020000000"), "version 2"),
        (bytes.fromhex("0109400000000a00000020000000"), "family code 9"),
        (bytes.fromhex("0100400000000a00000020000000"), "must be 0"),
        ("text", "must be bytes"),
    ],
)
def test_decode_malformed(data: bytes, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        ModelSpec.decode(data)
