"""``ml_predict``'s rows (rpc.params.Rows), and hex (rpc.params.Hex), parse at C speed with the same answers as the
row-by-row loop they replaced: the same float32 array bit for bit, or the same refusal naming
the same first bad entry. The loop is kept here, as it was, as the reference."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rpc.errors import InvalidParams
from rpc.params import _F32_LIMIT, PREDICT_ROWS, Hex, _shown


def reference(value: list[list[Any]]) -> np.ndarray:
    """The loop of rpc.params.Rows.parse_value before it was vectorised (shape checks done)."""
    what = PREDICT_ROWS.describe()
    width = len(value[0])
    out = np.empty((len(value), width), dtype=np.float32)
    for r, row in enumerate(value):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidParams(f"must be {what}: row {r} is not an array of {width} numbers")
        for c, x in enumerate(row):
            kind = type(x)
            if kind is not float and (kind is not int or not -_F32_LIMIT < x < _F32_LIMIT):
                raise InvalidParams(f"must be {what}: inputs[{r}][{c}] is {_shown(x)}, not a float32 number")
        with np.errstate(over="ignore"):
            out[r] = row
        if not np.isfinite(out[r]).all():
            c = int(np.argmin(np.isfinite(out[r])))
            raise InvalidParams(f"must be {what}: inputs[{r}][{c}] is outside float32's finite range")
    return out


numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60),
    st.integers(-(2**130), 2**130),
    st.sampled_from([2**53 + 1, 2**128 - 1, 2**128, 3.4028235e38, 3.4028236e38, 1e39, -1e39, 0.1, 2**24 + 1]),
)
entries = st.one_of(numbers, numbers, numbers, st.sampled_from([True, False, None, "1", [1.0], {}]))


def outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(value).tobytes()
    except InvalidParams as exc:
        return "refused", exc.message


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 6).flatmap(lambda w: st.lists(st.lists(entries, min_size=w, max_size=w), min_size=1, max_size=6)))
def test_rows_parse_like_the_loop(rows: list[list[Any]]) -> None:
    got = outcome(PREDICT_ROWS.parse, rows)
    assert got == outcome(reference, rows), rows


def test_the_largest_rows_parse_like_the_loop() -> None:
    """1,024 rows of 256 (how fast is a figure: 38 ms for the loop, about 10-18 ms now, not a
    test)."""
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((1024, 256)).tolist()
    assert PREDICT_ROWS.parse(rows).tobytes() == reference(rows).tobytes()


def test_a_nan_beside_an_integer_too_large_names_the_integer() -> None:
    """Found by the property above: max() over rows holding a NaN is NaN, so an integer past
    float64's exact range beside it skipped the exact path and was named as out of range."""
    for rows in ([[2**128], [float("nan")]], [[2**128, float("nan")]], [[float("nan"), 2**128]]):
        assert outcome(PREDICT_ROWS.parse, rows) == outcome(reference, rows), rows


_REFERENCE_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def hex_reference(value: Any, size: int | None = None, max_size: int | None = None) -> bytes:
    """rpc.params.Hex.parse_value as it was, with a regular expression over the digits (690 ms
    for 14 MB on the event loop: retest45's F4), kept as the reference."""
    hex_param = Hex(size=size, max_size=max_size)
    if not isinstance(value, str) or not value.startswith("0x") or not _REFERENCE_HEX.fullmatch(value, 2):
        raise InvalidParams(f"must be {hex_param.describe()} (an even number of digits 0-9, a-f), got {_shown(value)}")
    length = (len(value) - 2) // 2
    if size is not None and length != size:
        raise InvalidParams(f"must be {size} bytes, got {length}")
    if max_size is not None and length > max_size:
        raise InvalidParams(f"must be at most {max_size} bytes, got {length}")
    return bytes.fromhex(value[2:])


hex_texts = st.one_of(
    st.binary(max_size=40).map(lambda b: "0x" + b.hex()),
    st.binary(max_size=40).map(lambda b: "0x" + b.hex().upper()),
    st.text(alphabet="0123456789abcdefABCDEFxX \t\n\x0bg\u00e9\u0661", max_size=12).map(lambda t: "0x" + t),
    st.text(max_size=12),
    st.sampled_from(["0x", "0x0", "0x 0a", "0x0a ", "0x0a\n", "0x\u0661\u0662", 7, None, ["0x00"]]),
)


@settings(max_examples=600, deadline=None)
@given(hex_texts, st.sampled_from([(None, None), (2, None), (None, 3), (0, None)]))
def test_hex_parses_like_the_regular_expression_did(value: Any, bounds: tuple[int | None, int | None]) -> None:
    size, max_size = bounds
    got = outcome(lambda v: np.frombuffer(Hex(size=size, max_size=max_size).parse_value(v), dtype=np.uint8), value)
    want = outcome(lambda v: np.frombuffer(hex_reference(v, size, max_size), dtype=np.uint8), value)
    assert got == want, value
