"""The rpc package's one exception tree: every JSON-RPC error object the node can send.

`RpcError` carries the three members of a JSON-RPC 2.0 error object (spec §5.1):
`code`, `message` and an optional `data`. A method handler raises one of these and the
server turns it into ``{"jsonrpc": "2.0", "error": {...}, "id": ...}``; anything else a
handler raises becomes -32603 (logged, never sent back as a traceback).

Codes:

* -32700..-32600: the JSON-RPC 2.0 spec's reserved codes.
* -32006..-32011: jsonrpsee's server-limit codes (the implementation-defined range
  -32000..-32099 of the spec), so that Substrate tooling sees what it expects.
* 1001..1021: Substrate's author/transaction-pool codes, from
  ``substrate/client/rpc-api/src/author/error.rs`` (BASE_ERROR = 1000,
  POOL_INVALID_TX = BASE_ERROR + 10, then +1 each: note 1017 is UNSUPPORTED_KEY_TYPE,
  so unactionable is 1018, no tags 1019, invalid block id 1020, future tx 1021).
  Their ``message`` is Substrate's text and ``data`` is a string that says why.

`RpcCallError` is what the client raises when the server answered with an error object;
`RpcTransportError` is what it raises when there was no JSON-RPC answer at all.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyImported",
    "AuthorError",
    "BadFormat",
    "BatchTooLarge",
    "CallFailed",
    "CycleDetected",
    "FutureTransactionRejected",
    "ImmediatelyDropped",
    "InternalError",
    "InvalidBlockId",
    "InvalidParams",
    "InvalidRequest",
    "InvalidTransaction",
    "MethodNotFound",
    "NoTagsProvided",
    "OversizedRequest",
    "OversizedResponse",
    "ParseError",
    "RateLimited",
    "RpcCallError",
    "RpcError",
    "RpcTransportError",
    "ServerBusy",
    "SubscriptionDropped",
    "SubscriptionsUnsupported",
    "TemporarilyBanned",
    "TooLowPriority",
    "TooManyNodeSubscriptions",
    "TooManySubscriptions",
    "Unactionable",
    "UnknownTransactionValidity",
    "UnsafeRpcCalled",
    "UnsupportedKeyType",
    "VerificationError",
]


class RpcError(Exception):
    """A JSON-RPC 2.0 error object: ``code``, ``message`` and optional ``data``.

    Subclasses fix ``code`` and a default ``message``; ``data`` is any JSON value that
    tells the caller why (by convention here, a short string).
    """

    code: ClassVar[int] = -32000
    default_message: ClassVar[str] = "Server error"

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        self.message = message if message is not None else self.default_message
        self.data = data
        super().__init__(self.message if data is None else f"{self.message}: {data}")

    def to_wire(self) -> dict[str, Any]:
        """The error object as sent on the wire (``data`` omitted when None, spec §5.1)."""
        if self.data is None:
            return {"code": self.code, "message": self.message}
        return {"code": self.code, "message": self.message, "data": self.data}


# --- JSON-RPC 2.0 spec codes ------------------------------------------------------


class ParseError(RpcError):
    """-32700: the body is not valid JSON (or not UTF-8, or nested too deeply)."""

    code = -32700
    default_message = "Parse error"


class InvalidRequest(RpcError):
    """-32600: valid JSON but not a valid Request object (or an empty batch)."""

    code = -32600
    default_message = "Invalid request"


class MethodNotFound(RpcError):
    """-32601: no method by that name is registered."""

    code = -32601
    default_message = "Method not found"


class UnsafeRpcCalled(MethodNotFound):
    """-32601 for an unsafe method on an externally exposed server (Substrate's text)."""

    default_message = "RPC call is unsafe to be called externally"


class SubscriptionsUnsupported(MethodNotFound):
    """-32601 for a (un)subscribe method called over HTTP: subscriptions need a WebSocket."""

    default_message = "Subscriptions are only available over WebSocket"


class InvalidParams(RpcError):
    """-32602: the params do not fit the method; the message says which param and why."""

    code = -32602
    default_message = "Invalid params"


class InternalError(RpcError):
    """-32603: the handler failed unexpectedly; details go to the log, not the caller."""

    code = -32603
    default_message = "Internal error"


# --- implementation-defined server errors (jsonrpsee's numbering) -------------------


class CallFailed(RpcError):
    """-32000: jsonrpsee's generic "call execution failed" for a handler's own failure."""

    code = -32000
    default_message = "Call execution failed"


class TooManySubscriptions(RpcError):
    """-32006: the connection already holds --rpc-max-subscriptions-per-connection."""

    code = -32006
    default_message = "Too many subscriptions on the connection"


class OversizedRequest(RpcError):
    """-32007: the request exceeds --rpc-max-request-size."""

    code = -32007
    default_message = "Request is too big"


class OversizedResponse(RpcError):
    """-32008: the response would exceed --rpc-max-response-size."""

    code = -32008
    default_message = "Response is too big"


class ServerBusy(RpcError):
    """-32009: the server refuses work for now (e.g. shutting down)."""

    code = -32009
    default_message = "Server is busy, try again later"


class TooManyNodeSubscriptions(ServerBusy):
    """-32009: the node as a whole already serves --rpc-max-node-subscriptions (all
    connections together). Not -32006: another connection would not help; later might."""

    default_message = "Too many subscriptions on the node, try again later"


class SubscriptionDropped(ServerBusy):
    """-32009, as a subscription's closing error: the client did not read its notifications
    fast enough, the connection's bounded queue was full, and the server dropped it."""

    default_message = "Subscription dropped: notifications were not read fast enough"


class RateLimited(ServerBusy):
    """-32009: the caller's address (or its subnet) has made its calls a minute
    (--rpc-rate-limit) and the next one is not due soon; ``data`` says whose and when."""

    default_message = "Too many calls from this address, try again later"
    retry_after = 1  # whole seconds until the next call is due (HTTP's Retry-After)


class BatchTooLarge(RpcError):
    """-32010: the batch has more entries than the server's max batch length."""

    code = -32010
    default_message = "The batch request was too large"


# --- Substrate author / transaction pool codes --------------------------------------


class AuthorError(RpcError):
    """Base of Substrate's 1000-range author/pool errors; ``data`` is required: say why."""

    code = 1000
    default_message = "Author error"

    def __init__(self, data: str, message: str | None = None) -> None:
        super().__init__(message, data)


class BadFormat(AuthorError):
    """1001: the extrinsic bytes do not decode."""

    code = 1001
    default_message = "Extrinsic has invalid format"


class VerificationError(AuthorError):
    """1002: the runtime failed while verifying the transaction."""

    code = 1002
    default_message = "Verification Error"


class InvalidTransaction(AuthorError):
    """1010: the pool rejected the transaction as invalid (bad proof, stale nonce...)."""

    code = 1010
    default_message = "Invalid Transaction"


class UnknownTransactionValidity(AuthorError):
    """1011: the validity of the transaction cannot be determined."""

    code = 1011
    default_message = "Unknown Transaction Validity"


class TemporarilyBanned(AuthorError):
    """1012: the transaction is temporarily banned."""

    code = 1012
    default_message = "Transaction is temporarily banned"


class AlreadyImported(AuthorError):
    """1013: the transaction is already in the pool."""

    code = 1013
    default_message = "Transaction Already Imported"


class TooLowPriority(AuthorError):
    """1014: too low priority to replace a transaction already in the pool."""

    code = 1014
    default_message = "Priority is too low"


class CycleDetected(AuthorError):
    """1015: including the transaction would cause a dependency cycle."""

    code = 1015
    default_message = "Cycle Detected"


class ImmediatelyDropped(AuthorError):
    """1016: the transaction could not enter the pool because of its limits."""

    code = 1016
    default_message = "Immediately Dropped"


class UnsupportedKeyType(AuthorError):
    """1017: the key type's crypto is not known (author_insertKey)."""

    code = 1017
    default_message = "Unknown key type crypto"


class Unactionable(AuthorError):
    """1018: not propagable and the local node does not author blocks."""

    code = 1018
    default_message = "Unactionable"


class NoTagsProvided(AuthorError):
    """1019: the transaction provides no tags, so the pool cannot identify it."""

    code = 1019
    default_message = "No tags provided"


class InvalidBlockId(AuthorError):
    """1020: the block id given for validation is not valid."""

    code = 1020
    default_message = "The provided block ID is not valid"


class FutureTransactionRejected(AuthorError):
    """1021: the pool is not accepting future transactions."""

    code = 1021
    default_message = "The pool is not accepting future transactions"


# --- client side --------------------------------------------------------------------


class RpcCallError(RpcError):
    """The server answered a call with a JSON-RPC error object (any code)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message, data)
        # An instance attribute shadows the ClassVar: the code comes from the wire.
        self.code = code  # type: ignore[misc]

    @classmethod
    def from_wire(cls, obj: Any) -> RpcCallError:
        """Build from a wire error object, tolerating a malformed one."""
        if isinstance(obj, dict):
            code = obj.get("code")
            message = obj.get("message")
            return cls(
                code if isinstance(code, int) else -32603,
                message if isinstance(message, str) else "Malformed error object",
                obj.get("data"),
            )
        return cls(-32603, "Malformed error object", obj)

    def __repr__(self) -> str:
        return f"RpcCallError(code={self.code}, message={self.message!r}, data={self.data!r})"


class RpcTransportError(RpcError):
    """No JSON-RPC answer: connection refused or lost, HTTP status without a body, timeout."""

    code = 0
    default_message = "Transport error"
