"""The one exception tree of ml_runtime.

Every error the runtime raises on bad input or on a consensus failure is a subclass of
:class:`MLRuntimeError`, so the chain can map the whole family to "transaction invalid"
(or "block invalid") with a single ``except`` and still show the precise message. The one
errors outside it, :class:`FloatEnvironmentChanged` and its kinds, are outside on purpose:
they are no verdict on any input (its docstring says why).
"""

from __future__ import annotations


class MLRuntimeError(Exception):
    """Base class of every error raised by ml_runtime."""


class InvalidSpec(MLRuntimeError):
    """A model spec is malformed: unknown family, dimensions out of range, bad encoding."""


class InvalidJob(MLRuntimeError):
    """A training job (or a predict call) does not fit its spec or its bounds."""


class InvalidCheckpoint(MLRuntimeError):
    """A checkpoint handed to segment re-execution has the wrong shape, dtype or values."""


class SegmentMismatch(MLRuntimeError):
    """Re-running a segment produced bits different from the claimed transcript entry."""


class ProofError(MLRuntimeError):
    """A Merkle proof is malformed or does not lead to the claimed root."""


class NonFiniteWeights(MLRuntimeError):
    """Training produced a non-finite weight or loss; the job is diverged.

    ``segment`` is the index of the segment that diverged and ``step`` the global
    step index (0-based) whose update produced the first non-finite value.
    """

    def __init__(self, message: str, *, segment: int, step: int) -> None:
        super().__init__(message)
        self.segment = segment
        self.step = step


class BuildMismatch(MLRuntimeError):
    """This build of the kernels computes bits different from the pinned golden vector."""


class FloatEnvironmentChanged(RuntimeError):
    """The thread about to run a consensus kernel has another floating-point environment than
    IEEE 754's default, so it would compute other bits: see :mod:`ml_runtime.fpenv`.

    Deliberately *not* an :class:`MLRuntimeError`. The chain reads an MLRuntimeError from a
    kernel call as a verdict on its input: a TRAIN or a block "invalid", a federated round
    "failed" (``chain.pallets.federated`` records that in state). A thread that computes
    other bits can give no verdict; the error must pass every such handler and stop the
    block or transaction at hand, as any other fault of this node's environment does.
    """


class SubnormalsFlushed(FloatEnvironmentChanged):
    """The thread flushes subnormals (MXCSR's FTZ or DAZ)."""


class RoundingChanged(FloatEnvironmentChanged):
    """The thread rounds otherwise than to nearest, ties to even (MXCSR's RC, fesetround)."""
