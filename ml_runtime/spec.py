"""Model specs: the three model families, their dimensions and parameter layouts.

A :class:`ModelSpec` is what a training transaction names; its canonical encoding is
``version (u8) || family (u8) || d (u32 LE) || k (u32 LE) || h (u32 LE)`` — 14 bytes —
and its hash is blake2b-256 of that encoding.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from ml_runtime.errors import InvalidSpec

SPEC_VERSION: Final = 1
MAX_DIM: Final = 4096
MAX_PARAMS: Final = 2**22

FAMILIES: Final = ("linear", "softmax", "mlp")
_FAMILY_CODE: Final = {"linear": 0, "softmax": 1, "mlp": 2}
_ENCODING: Final = struct.Struct("<BBIII")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model family and its dimensions.

    Parameter layouts (one flat float32 vector, matrices row-major):

    * ``linear`` (least squares, d inputs -> k outputs):
      ``W`` (d×k) then ``b`` (k). Output ``x @ W + b``; per-sample loss
      ``0.5 * sum_c (out_c - y_c)**2``.
    * ``softmax`` (multinomial logistic regression, d -> k classes):
      ``W`` (d×k) then ``b`` (k). Loss: cross-entropy of ``softmax(x @ W + b)``.
    * ``mlp`` (d -> h -> k, ReLU hidden layer, softmax output):
      ``W1`` (d×h), ``b1`` (h), ``W2`` (h×k), ``b2`` (k). Loss: cross-entropy.

    ``h`` is the hidden width for ``mlp`` and must be 0 for the other families.
    """

    family: str
    d: int
    k: int
    h: int = 0

    def __post_init__(self) -> None:
        if self.family not in _FAMILY_CODE:
            raise InvalidSpec(f"unknown model family {self.family!r}; expected one of {FAMILIES}")
        for name in ("d", "k", "h"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidSpec(f"dimension {name} must be an int, got {type(value).__name__}")
        if not 1 <= self.d <= MAX_DIM:
            raise InvalidSpec(f"input dimension d={self.d} is outside 1..{MAX_DIM}")
        min_k = 1 if self.family == "linear" else 2
        if not min_k <= self.k <= MAX_DIM:
            what = "outputs" if self.family == "linear" else "classes"
            raise InvalidSpec(f"{what} k={self.k} is outside {min_k}..{MAX_DIM}")
        if self.family == "mlp":
            if not 1 <= self.h <= MAX_DIM:
                raise InvalidSpec(f"hidden width h={self.h} is outside 1..{MAX_DIM} for mlp")
        elif self.h != 0:
            raise InvalidSpec(f"hidden width h={self.h} given for family {self.family!r}; must be 0")
        if self.param_count > MAX_PARAMS:
            raise InvalidSpec(
                f"{self.param_count} parameters exceed the limit of {MAX_PARAMS} for one model"
            )

    @property
    def param_count(self) -> int:
        """Length of the flat parameter vector."""
        if self.family == "mlp":
            return self.d * self.h + self.h + self.h * self.k + self.k
        return self.d * self.k + self.k

    @property
    def fan_pairs(self) -> tuple[tuple[int, int, int, int], ...]:
        """``(offset, size, fan_in, fan_out)`` of each weight matrix (biases are the rest)."""
        if self.family == "mlp":
            w2 = self.d * self.h + self.h
            return ((0, self.d * self.h, self.d, self.h), (w2, self.h * self.k, self.h, self.k))
        return ((0, self.d * self.k, self.d, self.k),)

    def encode(self) -> bytes:
        """Canonical 14-byte encoding (version, family, d, k, h)."""
        return _ENCODING.pack(SPEC_VERSION, _FAMILY_CODE[self.family], self.d, self.k, self.h)

    @classmethod
    def decode(cls, data: bytes) -> ModelSpec:
        """Inverse of :meth:`encode`; raises :class:`InvalidSpec` on anything malformed."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidSpec(f"spec encoding must be bytes, got {type(data).__name__}")
        raw = bytes(data)
        if len(raw) != _ENCODING.size:
            raise InvalidSpec(f"spec encoding has {len(raw)} bytes; expected {_ENCODING.size}")
        version, code, d, k, h = _ENCODING.unpack(raw)
        if version != SPEC_VERSION:
            raise InvalidSpec(f"spec version {version} is not supported (this build: {SPEC_VERSION})")
        if code >= len(FAMILIES):
            raise InvalidSpec(f"unknown family code {code} in spec encoding")
        return cls(FAMILIES[code], d, k, h)

    def hash(self) -> bytes:
        """blake2b-256 of the canonical encoding."""
        return hashlib.blake2b(self.encode(), digest_size=32).digest()
