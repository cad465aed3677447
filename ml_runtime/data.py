"""The bundled 8x8 handwritten digits data set (UCI optdigits, test split).

``data/digits.npz`` holds ``pixels`` (uint8, 1797×64, values 0..16) and ``labels``
(uint8, 1797) — the 1,797 images of the test split of the UCI "Optical Recognition of
Handwritten Digits" data set (E. Alpaydin and C. Kaynak, 1998; CC BY 4.0), taken from
the copy scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``, BSD-3-Clause).
See ``data/README.md`` for provenance. The loader pins a hash of the arrays so that a
corrupted copy cannot silently change training bits.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Final

import numpy as np

from ml_runtime.errors import MLRuntimeError

# blake2b-256 of pixels.tobytes() || labels.tobytes() of the shipped file.
DIGITS_HASH: Final = "f5063ec79c8ca418d6aeba1e6f00271186eabaf012c88c5b233d1240e1877951"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """x float32 (1797, 64) = pixel / 16 (exact, in [0, 1]) and y int32 (1797,) in 0..9."""
    with resources.files("ml_runtime").joinpath("data/digits.npz").open("rb") as f, np.load(
        f, allow_pickle=False
    ) as z:
        pixels = np.asarray(z["pixels"], dtype=np.uint8)
        labels = np.asarray(z["labels"], dtype=np.uint8)
    digest = hashlib.blake2b(pixels.tobytes() + labels.tobytes(), digest_size=32).hexdigest()
    if digest != DIGITS_HASH or pixels.shape != (1797, 64) or labels.shape != (1797,):
        raise MLRuntimeError("bundled digits data does not match its pinned hash; reinstall")
    # Division by 16, a power of two, is exact in float32.
    x = pixels.astype(np.float32) / np.float32(16.0)
    return x, labels.astype(np.int32)
