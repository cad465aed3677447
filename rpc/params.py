"""Parameter kinds: every RPC parameter is parsed and bounded here, once per kind.

A method declares each parameter's kind in its signature, and `rpc.methods.bind_params`
runs the kind's parser before the method body runs::

    @bind_params
    async def ml_getModel(model: Annotated[int, U32], at: Annotated[bytes | None, BLOCK_HASH.or_null()] = None): ...

so a method body only ever sees values that fit: ids in 0..2^32-1 (what the chain's
``Count`` storage keys can encode), storage keys of at most 256 bytes (the trie's
``MAX_KEY_LEN``), 32-byte hashes, bounded lists. A value that does not fit is -32602
``Invalid params: param <i> '<name>' <reason>``; the reason names the rule and what was
given, e.g. ``param 0 'model' must be an integer in 0..4294967295, got integer 4294967296``.

Rules common to every kind:

* ``null`` is accepted only by a kind made with `Param.or_null`; an omitted trailing
  parameter takes the method's default without parsing.
* Integers are JSON integers: ``true``/``false`` and ``1.0`` are refused (Python's bool is
  an int; JSON's is not), and so are digits in strings, except where a kind says so
  (block numbers accept ``"0x1a"`` and ``"26"``, as Substrate does).
* Hex is ``0x`` followed by an even number of ASCII hex digits (either case), nothing
  else: no whitespace (Python's ``bytes.fromhex`` would skip it), no non-ASCII digits.
* Error messages quote at most 40 characters of what was given.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, replace
from typing import Annotated, Any, Final

import msgspec
import numpy as np

from chain.crypto import ss58_decode
from chain.errors import ChainError
from chain.trie import MAX_KEY_LEN
from ml_runtime.spec import MAX_DIM
from rpc.errors import InvalidParams
from rpc.methods import json_type

__all__ = [
    "ACCOUNT",
    "BLOCK_HASH",
    "BLOCK_NUMBERS",
    "EXTRINSIC",
    "HASH",
    "KEYS_COUNT",
    "MAX_BLOCK_NUMBERS",
    "MAX_KEYS_PAGE",
    "MAX_PREDICT_NUMBERS",
    "MAX_PREDICT_OUTPUTS",
    "MAX_PREDICT_ROWS",
    "MAX_PREDICT_WORK",
    "MAX_PROOF_KEYS",
    "PREDICT_ROWS",
    "STORAGE_KEY",
    "STORAGE_KEYS",
    "U32",
    "U32_MAX",
    "AccountId",
    "At",
    "BlockNumberOrList",
    "ExtrinsicBytes",
    "Hash",
    "Id",
    "InputRows",
    "KeysCount",
    "OptionalAccountId",
    "OptionalId",
    "OptionalStorageKey",
    "Param",
    "StorageKey",
    "StorageKeys",
    "check_no_params",
]

U32_MAX: Final = 2**32 - 1
MAX_KEYS_PAGE: Final = 1000  # state_getKeysPaged count, as Substrate's STORAGE_KEYS_PAGED_MAX_COUNT
MAX_PROOF_KEYS: Final = 1000  # keys in one state_getReadProof
MAX_BLOCK_NUMBERS: Final = 1024  # numbers in one chain_getBlockHash list
MAX_PREDICT_ROWS: Final = 1024  # rows in one ml_predict
MAX_PREDICT_NUMBERS: Final = 2**18  # numbers in one ml_predict (rows x width)
# What one ml_predict may cost, checked against the model (rpc.namespaces.ml) before its weights
# are read: a call is free, and a 1 KB request (159 rows of one number through a model of 4,096
# classes) made a 15 MB answer at about 155 ms of the node's CPU, most of it spent on the answer's
# 651,264 numbers after the forward pass (tester18's F1). Outputs (rows x the model's k): 2^14
# make an answer of at most about 400 KB, a few milliseconds to shape and encode; 1,024 rows of
# up to 16 classes fit. Work (rows x the model's parameters, the forward pass's multiply-adds):
# 2^24 take about 16 ms of one core; 1,024 rows through the 2,410 parameters of a 64-32-10 MLP
# take 2.5 M; a model of 2^18 parameters (the default max_model_params) answers 64 rows a
# call, one of chain.config.MAX_MODEL_PARAMS (500,000) 33. More is `models.infer`, paid.
MAX_PREDICT_OUTPUTS: Final = 2**14
MAX_PREDICT_WORK: Final = 2**24
_F32_LIMIT: Final = 2**128  # integers at or past it are not finite in float32
_F32_LIMIT_FLOAT: Final = float(_F32_LIMIT)  # (an integer below it may round up to it in float64, none past it down)
_F64_EXACT: Final = 2.0**53  # integers below it convert to float64 exactly
_AT_ENTRY = re.compile(r"at `\$\[(\d+)\]\[\d+\]`")
_NUMBER_TEXT = re.compile(r"0x[0-9a-fA-F]{1,64}|[0-9]{1,80}")


def _shown(value: Any) -> str:
    """What was given, short: the type, and the value when it is a short scalar."""
    if isinstance(value, bool) or value is None:
        return json_type(value)
    if isinstance(value, int | float | str):
        text = repr(value) if isinstance(value, str) else str(value)
        if len(text) > 40:
            text = text[:37] + "..."
        return f"{json_type(value)} {text}"
    return json_type(value)


def _unfit(reason: str) -> InvalidParams:
    # bind_params prefixes "Invalid params: param <i> '<name>' " to the reason.
    return InvalidParams(reason)


@dataclass(frozen=True, slots=True)
class Param:
    """A kind of parameter: `parse` turns a decoded JSON value into what the method takes,
    or raises InvalidParams whose message is the reason (``must be ...``)."""

    nullable: bool = False

    def or_null(self) -> Param:
        """The same kind, also accepting ``null`` (passed on as None)."""
        return replace(self, nullable=True)

    def parse(self, value: Any) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise _unfit(f"must be {self.describe()}, got null")
        return self.parse_value(value)

    def describe(self) -> str:
        raise NotImplementedError

    def parse_value(self, value: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Hex(Param):
    """Bytes as 0x-hex: exactly ``size`` bytes, or at most ``max_size`` (None: unbounded
    here; the request size limit bounds it)."""

    size: int | None = None
    max_size: int | None = None

    def describe(self) -> str:
        if self.size is not None:
            return f"0x-prefixed hex of {self.size} bytes"
        if self.max_size is not None:
            return f"0x-prefixed hex of at most {self.max_size} bytes"
        return "0x-prefixed hex"

    def parse_value(self, value: Any) -> bytes:
        """The digits are checked by ``bytes.fromhex`` itself (C speed), which skips ASCII
        whitespace: a result short of half the digits had some. A regular expression over the
        digits first took 690 ms for 14 MB on the event loop, before the length was looked at
        (retest45's F4: three callers held the loop 0.5-2.5 s at a time)."""
        raw = None
        if isinstance(value, str) and value.startswith("0x") and value.isascii() and not len(value) % 2:
            with contextlib.suppress(ValueError):
                raw = bytes.fromhex(value[2:])
        if raw is None or 2 * len(raw) != len(value) - 2:
            raise _unfit(f"must be {self.describe()} (an even number of digits 0-9, a-f), got {_shown(value)}")
        length = len(raw)
        if self.size is not None and length != self.size:
            raise _unfit(f"must be {self.size} bytes, got {length}")
        if self.max_size is not None and length > self.max_size:
            raise _unfit(f"must be at most {self.max_size} bytes, got {length}")
        return raw


@dataclass(frozen=True, slots=True)
class IntRange(Param):
    """A JSON integer in ``low..high`` (both included)."""

    low: int = 0
    high: int = U32_MAX

    def describe(self) -> str:
        return f"an integer in {self.low}..{self.high}"

    def parse_value(self, value: Any) -> int:
        if type(value) is not int or not self.low <= value <= self.high:
            raise _unfit(f"must be {self.describe()}, got {_shown(value)}")
        return value


@dataclass(frozen=True, slots=True)
class HexList(Param):
    """An array of at most ``max_items`` values of one `Hex` kind."""

    item: Hex = Hex()
    max_items: int = 0

    def describe(self) -> str:
        return f"an array of at most {self.max_items} values of {self.item.describe()}"

    def parse_value(self, value: Any) -> list[bytes]:
        if not isinstance(value, list):
            raise _unfit(f"must be {self.describe()}, got {_shown(value)}")
        if len(value) > self.max_items:
            raise _unfit(f"must hold at most {self.max_items} items, got {len(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self.item.parse(item))
            except InvalidParams as exc:
                raise _unfit(f"item {i} {exc.message}") from None
        return out


@dataclass(frozen=True, slots=True)
class Account(Param):
    """An account id: an SS58 address (this chain's prefix) or 0x-hex of 32 bytes.

    Dev URIs such as ``//Alice`` are refused: deriving keys is the client's work, and the
    node must not spend a key derivation on every request."""

    def describe(self) -> str:
        return "an SS58 address or a 0x-hex 32-byte account id"

    def parse_value(self, value: Any) -> bytes:
        if isinstance(value, str) and value.startswith("0x"):
            try:
                return HASH.parse_value(value)
            except InvalidParams as exc:
                raise _unfit(f"must be {self.describe()}: {exc.message}") from None
        if not isinstance(value, str) or not value.isascii() or not value.isalnum() or len(value) > 64:
            raise _unfit(f"must be {self.describe()}, got {_shown(value)}")
        try:
            return ss58_decode(value)
        except (ChainError, ValueError) as exc:
            raise _unfit(f"must be {self.describe()}: {exc}") from None


@dataclass(frozen=True, slots=True)
class BlockNumbers(Param):
    """``chain_getBlockHash``'s argument: a block number or an array of at most
    ``max_items`` of them (Substrate's ``ListOrValue<NumberOrHex>``). A number is a JSON
    integer, a 0x-hex string or a decimal string, in 0..2^32-1. Parses to int or list."""

    max_items: int = MAX_BLOCK_NUMBERS

    def describe(self) -> str:
        return f"a block number or an array of at most {self.max_items} block numbers"

    def parse_value(self, value: Any) -> int | list[int]:
        if isinstance(value, list):
            if len(value) > self.max_items:
                raise _unfit(f"must hold at most {self.max_items} items, got {len(value)}")
            out = []
            for i, item in enumerate(value):
                try:
                    out.append(self._number(item))
                except InvalidParams as exc:
                    raise _unfit(f"item {i} {exc.message}") from None
            return out
        return self._number(value)

    @staticmethod
    def _number(value: Any) -> int:
        number = value
        if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
            number = int(value[2:], 16) if value.startswith("0x") else int(value, 10)
        if type(number) is not int or not 0 <= number <= U32_MAX:
            raise _unfit(f"must be a block number: an integer in 0..{U32_MAX} (or its 0x-hex or decimal text), got {_shown(value)}")
        return number


@dataclass(frozen=True, slots=True)
class Rows(Param):
    """Model inputs: 1..``max_rows`` rows of one width in 1..``max_features``, at most
    ``max_numbers`` numbers in all; each a JSON number (integers included, booleans and
    strings not) within float32's finite range after rounding. Parses to a float32 array
    of shape (rows, width); the method checks the width against the model's ``d``."""

    max_rows: int = MAX_PREDICT_ROWS
    max_features: int = MAX_DIM
    max_numbers: int = MAX_PREDICT_NUMBERS

    def describe(self) -> str:
        return f"rows of numbers: 1..{self.max_rows} arrays of one length in 1..{self.max_features}"

    def parse_value(self, value: Any) -> np.ndarray:
        """Checks the shape and count first (cheap), then converts every number at C speed:
        msgspec checks the types (numbers only: not booleans, strings or null) and numpy
        rounds to float32. The Python loop over every number this replaced held the event
        loop 38 ms for 1,024 rows of 256. A refusal names the same first bad entry as that
        loop did (`_first_unfit` walks only up to it), and integers of 2^53 or more take
        that loop (`_parse_exactly`): float64 cannot hold them exactly, and the answer must
        be the one the loop gave."""
        what = self.describe()
        if not isinstance(value, list) or not 1 <= len(value) <= self.max_rows:
            count = f" of {len(value)} items" if isinstance(value, list) else ""
            raise _unfit(f"must be {what}, got {_shown(value)}{count}")
        width = len(value[0]) if isinstance(value[0], list) else 0
        if not 1 <= width <= self.max_features:
            raise _unfit(f"must be {what}: row 0 is not an array of 1..{self.max_features} numbers")
        if len(value) * width > self.max_numbers:
            raise _unfit(f"must hold at most {self.max_numbers} numbers in all, got {len(value)} rows of {width}")
        for r, row in enumerate(value):  # before any number is read: no row is longer than the first
            if not isinstance(row, list) or len(row) != width:
                raise _unfit(f"must be {what}: row {r} is not an array of {width} numbers")
        try:
            wide = np.array(msgspec.convert(value, list[list[float]]), dtype=np.float64)
        except msgspec.ValidationError as exc:
            raise self._first_unfit(value, width, exc) from None
        if (np.abs(wide) >= _F64_EXACT).any():  # (elementwise: a NaN beside one made max() NaN, and missed it)
            return self._parse_exactly(value, width, wide=wide)
        with np.errstate(over="ignore"):  # past float32's maximum becomes inf: refused next
            out = wide.astype(np.float32)
        finite = np.isfinite(out)
        if not finite.all():
            r, c = divmod(int(np.argmin(finite.ravel())), width)
            raise _unfit(f"must be {what}: inputs[{r}][{c}] is outside float32's finite range")
        return out

    def _first_unfit(self, value: list[Any], width: int, exc: msgspec.ValidationError) -> InvalidParams:
        """The refusal the row-by-row loop gives, for input msgspec refused at ``$[r][c]``:
        a number out of float32's range in an earlier row comes first, else row r's own."""
        found = _AT_ENTRY.search(str(exc))
        if found is None:
            return self._refusal(value, width, len(value))
        r = int(found.group(1))
        if r:
            wide = np.array(value[:r], dtype=np.float64)  # numbers all: msgspec got past them
            with np.errstate(over="ignore"):
                finite = np.isfinite(wide.astype(np.float32)).all()
            if not finite or (np.abs(wide) >= _F64_EXACT).any():
                return self._refusal(value, width, r + 1)
        return self._refusal(value, width, r + 1, start=r)

    def _refusal(self, value: list[Any], width: int, stop: int, start: int = 0) -> InvalidParams:
        try:
            self._parse_exactly(value[start:stop], width, offset=start)
        except InvalidParams as exc:
            return exc
        return _unfit(f"must be {self.describe()}")  # unreachable: msgspec refused one of them

    def _parse_exactly(self, value: list[Any], width: int, *, offset: int = 0, wide: np.ndarray | None = None) -> np.ndarray:
        """The row-by-row parse, for the cases the fast path hands over. ``wide``: the rows as
        float64, once msgspec has checked that every entry is a number: then only the entries
        of 2^128 or more there are looked at one by one (an integer among them may be past
        float32's range; one below it is not), not every entry: 1,024 rows of 256 integers of
        2^53 + 1 held the event loop 70-90 ms, and a request of the wrong width was refused
        only after that (retest45's F2)."""
        what = self.describe()
        out = np.empty((len(value), width), dtype=np.float32)
        for i, row in enumerate(value):
            r = offset + i
            columns = range(width) if wide is None else np.flatnonzero(np.abs(wide[i]) >= _F32_LIMIT_FLOAT).tolist()
            for c in columns:
                x = row[c]
                kind = type(x)
                if kind is not float and (kind is not int or not -_F32_LIMIT < x < _F32_LIMIT):
                    raise _unfit(f"must be {what}: inputs[{r}][{c}] is {_shown(x)}, not a float32 number")
            with np.errstate(over="ignore"):  # past float32's maximum becomes inf: refused next
                out[i] = row
            if not np.isfinite(out[i]).all():
                c = int(np.argmin(np.isfinite(out[i])))
                raise _unfit(f"must be {what}: inputs[{r}][{c}] is outside float32's finite range")
        return out


def check_no_params(params: Any) -> None:
    """The up-front check of a subscription that takes no parameters: ``[]``, ``{}``."""
    if isinstance(params, list | dict) and not params:
        return
    given = len(params) if isinstance(params, list | dict) else 1
    raise InvalidParams(f"Invalid params: expected at most 0 (none), got {given}")


U32: Final = IntRange(low=0, high=U32_MAX)
KEYS_COUNT: Final = IntRange(low=1, high=MAX_KEYS_PAGE)
HASH: Final = Hex(size=32)
BLOCK_HASH: Final = HASH
EXTRINSIC: Final = Hex()
STORAGE_KEY: Final = Hex(max_size=MAX_KEY_LEN)
STORAGE_KEYS: Final = HexList(item=STORAGE_KEY, max_items=MAX_PROOF_KEYS)
ACCOUNT: Final = Account()
BLOCK_NUMBERS: Final = BlockNumbers()
PREDICT_ROWS: Final = Rows()

# --- annotations for method signatures: ``async def m(model: Id, at: At = None)`` ---------------
Id = Annotated[int, U32]
OptionalId = Annotated[int | None, U32.or_null()]
At = Annotated[bytes | None, BLOCK_HASH.or_null()]
Hash = Annotated[bytes, HASH]
StorageKey = Annotated[bytes, STORAGE_KEY]
OptionalStorageKey = Annotated[bytes | None, STORAGE_KEY.or_null()]
StorageKeys = Annotated[list[bytes], STORAGE_KEYS]
KeysCount = Annotated[int, KEYS_COUNT]
ExtrinsicBytes = Annotated[bytes, EXTRINSIC]
AccountId = Annotated[bytes, ACCOUNT]
OptionalAccountId = Annotated[bytes | None, ACCOUNT.or_null()]
BlockNumberOrList = Annotated[int | list[int] | None, BLOCK_NUMBERS.or_null()]
InputRows = Annotated[np.ndarray, PREDICT_ROWS]
