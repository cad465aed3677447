"""Method tables: what the server can call, plus subscription sinks and param binding.

A `MethodTable` maps JSON-RPC method names to handlers. Chain code fills one table per
namespace (system_, chain_, state_, author_, ml_...) and the node merges them; the
server only ever sees a table, never chain objects.

* A call handler is ``async def handler(params) -> result`` where ``params`` is the
  request's ``params`` member, a ``list`` (positional) or ``dict`` (named); an absent
  ``params`` arrives as ``[]``. The result must already be JSON-ready: dicts, lists,
  str, int, float, bool, None (bytes go out as 0x-hex strings, Substrate's convention;
  the encoder would otherwise write base64).
* A subscription is registered as (subscribe name, notification name, unsubscribe name,
  handler) like jsonrpsee's ``#[subscription(name, item, unsubscribe)]``. The handler is
  ``async def handler(params, sink: Subscription) -> None``; it runs as its own task,
  pushes results with ``await sink.send(result)`` and is cancelled when the client
  unsubscribes or disconnects. Returning ends the subscription.
* `bind_params` turns ``async def f(hash: str | None = None)`` into a handler that
  accepts both ``["0x.."]`` and ``{"hash": "0x.."}`` (Substrate accepts both) and
  raises -32602 naming the param and the reason when they do not fit. A parameter
  annotated ``Annotated[T, kind]`` with a `ParamKind` (rpc.params) is parsed by it, so
  the method receives parsed, bounded values.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, Union

import msgspec

from rpc.errors import InvalidParams, RpcError, SubscriptionDropped

__all__ = [
    "CallHandler",
    "Fanout",
    "MethodSpec",
    "MethodTable",
    "Params",
    "Subscription",
    "SubscriptionHandler",
    "SubscriptionSpec",
    "bind_params",
    "json_type",
    "parse_params",
]

log = logging.getLogger("polchain.rpc")

Params = list[Any] | dict[str, Any]
CallHandler = Callable[[Params], Awaitable[Any]]
SubscriptionHandler = Callable[[Params, "Subscription"], Awaitable[None]]
ParamsCheck = Callable[[Params], None]


class ParamKind(Protocol):
    """A parser for one kind of parameter (see rpc.params): returns the value the method
    takes, or raises InvalidParams whose message is the reason (``must be ...``)."""

    def parse(self, value: Any) -> Any: ...


_encode = msgspec.json.Encoder().encode
# Subscriptions a Fanout queues an item to before it lets the loop run other callbacks
# (about 1.3 us each).
_FANOUT_BURST = 1024


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """A plain call: name, handler, and whether it is unsafe to expose externally."""

    name: str
    handler: CallHandler
    unsafe: bool = False


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """A subscription's three names, its handler, and an optional up-front params check.

    ``check_params`` runs before a subscription id is issued, so bad params get a plain
    -32602 response instead of an id followed by an error notification.
    """

    subscribe: str
    notification: str
    unsubscribe: str
    handler: SubscriptionHandler
    unsafe: bool = False
    check_params: ParamsCheck | None = None


class Subscription:
    """The sink a subscription handler writes to; one per subscription id.

    ``send`` never blocks on the client: it queues the notification on the
    connection's bounded outbound queue. If that queue is full (the client reads too
    slowly) the subscription is dropped: ``closed`` becomes True, ``send`` returns
    False, the handler task is cancelled at its next await, and the client gets one last
    notification saying why (-32009 `SubscriptionDropped`; it may exceed the queue's
    bound by one, once per subscription). The connection itself survives.
    Notifications of one connection go out in the order they were sent.

    ``send_json`` takes the result already encoded: a `Fanout` encodes a block's header
    once and every subscription adds only its own id around it (``_prefix``), instead of
    each encoding the same header again.
    """

    __slots__ = ("_closed", "_on_close", "_prefix", "_push", "_task", "id", "notification")

    def __init__(
        self,
        sub_id: str,
        notification: str,
        push: Callable[[bytes, bool], bool],
        on_close: Callable[[Subscription], None],
    ) -> None:
        self.id = sub_id
        self.notification = notification
        self._push = push
        self._on_close = on_close
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        # Byte for byte what msgspec writes for the notification object, up to the result.
        self._prefix = (
            b'{"jsonrpc":"2.0","method":' + _encode(notification)
            + b',"params":{"subscription":' + _encode(sub_id) + b',"result":'
        )

    @property
    def closed(self) -> bool:
        """True once unsubscribed, disconnected, dropped for overflow or ended."""
        return self._closed

    async def send(self, result: Any) -> bool:
        """Queue one notification carrying ``result``; False if the subscription is gone."""
        return self.send_json(_encode(result))

    def send_json(self, result: bytes) -> bool:
        """Queue one notification whose result is the JSON text ``result``; False if the
        subscription is gone (or was dropped now because the queue is full)."""
        if self._closed:
            return False
        if not self._push(self._prefix + result + b"}}", False):
            log.warning(
                "rpc: dropping subscription %s (%s): the client does not read fast enough",
                self.id,
                self.notification,
            )
            self.send_error(
                SubscriptionDropped(data="the connection's queue of unread notifications is full")
            )
            self.close()
            return False
        return True

    def send_error(self, error: RpcError) -> None:
        """Tell the client the subscription ended with ``error`` (jsonrpsee's close shape).

        Queued even past the queue's bound: it is the subscription's last message.
        """
        if self._closed:
            return
        self._push(
            _encode(
                {
                    "jsonrpc": "2.0",
                    "method": self.notification,
                    "params": {"subscription": self.id, "error": error.to_wire()},
                }
            ),
            True,
        )

    def close(self) -> None:
        """End the subscription from the server side; cancels its handler task."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        task = self._task
        # A handler that closes its own sink just returns; cancelling it would turn a
        # clean end into a CancelledError at its next await.
        if task is not None and task is not asyncio.current_task():
            task.cancel()


class Fanout:
    """One stream of items shared by every subscription that follows it: each item is
    shaped and encoded once, then queued to each sink with only its id added.

    Before, each ``chain_subscribeNewHeads`` was its own task reading its own queue and
    encoding the same header again: 100 WebSockets with 1,024 subscriptions each held the
    event loop about 4 s per block (benches/fanout.py). Now a block costs one encode and,
    per subscription, a concatenation and a queue put; no subscription task wakes.

    The stream (``source()``, e.g. the node's heads) is read by one task, started with the
    first follower and cancelled with the last. A new follower gets the latest item at once
    (a stream of heads begins with the current head), then every later one.
    """

    __slots__ = ("_latest", "_shape", "_sinks", "_source", "_task")

    def __init__(self, source: Callable[[], AsyncIterator[Any]], shape: Callable[[Any], Any]) -> None:
        self._source = source
        self._shape = shape
        self._sinks: dict[Subscription, asyncio.Future[None]] = {}  # each follower's waiter
        self._latest: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._sinks)

    async def follow(self, sink: Subscription) -> None:
        """Feed ``sink`` until it closes (this task is then cancelled) or the stream ends
        (its exception, if any, is raised here)."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._pump())
        elif self._latest is not None and not sink.send_json(self._latest):
            return
        # A future of its own, not one shared future (shielded) for all: cancelling a
        # waiter of a shared future removes its callback from a list of every follower,
        # and 100,000 followers leaving took minutes.
        waiter: asyncio.Future[None] = loop.create_future()
        self._sinks[sink] = waiter
        try:
            await waiter
        finally:
            self._sinks.pop(sink, None)
            if not self._sinks and self._task is not None:
                self._task.cancel()
                self._task = self._latest = None

    async def _pump(self) -> None:
        me = asyncio.current_task()
        error: Exception | None = None
        try:
            async for item in self._source():
                payload = _encode(self._shape(item))
                self._latest = payload
                for i, sink in enumerate(list(self._sinks)):
                    if not sink.send_json(payload):
                        self._sinks.pop(sink, None)
                    if i % _FANOUT_BURST == _FANOUT_BURST - 1:
                        await asyncio.sleep(0)  # a late joiner got ``_latest`` already
        except Exception as exc:
            error = exc
        finally:
            if self._task is me:  # the stream ended (not cancelled by the last follower)
                self._task = self._latest = None
                for waiter in self._sinks.values():
                    if not waiter.done():
                        if error is None:
                            waiter.set_result(None)
                        else:
                            waiter.set_exception(error)


class MethodTable:
    """A registry of JSON-RPC methods and subscriptions, keyed by method name.

    Names are unique across calls, subscribe and unsubscribe methods. Names starting
    with ``rpc.`` are reserved by the JSON-RPC 2.0 spec (§4) and refused.
    ``rpc_methods`` is provided by the server itself.
    """

    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}
        self._subscriptions: dict[str, SubscriptionSpec] = {}
        self._unsubscriptions: dict[str, SubscriptionSpec] = {}

    def _claim(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"method name must be a non-empty string, got {name!r}")
        if name.startswith("rpc."):
            raise ValueError(f"method name {name!r}: the 'rpc.' prefix is reserved by JSON-RPC 2.0")
        if name in self:
            raise ValueError(f"method {name!r} is already registered")

    def register(self, name: str, handler: CallHandler, *, unsafe: bool = False) -> None:
        """Register ``async def handler(params) -> result`` under ``name``."""
        if not callable(handler):
            raise TypeError(f"handler for {name!r} is not callable")
        self._claim(name)
        self._methods[name] = MethodSpec(name, handler, unsafe)

    def method(self, name: str, *, unsafe: bool = False) -> Callable[[CallHandler], CallHandler]:
        """Decorator form of `register`."""

        def decorate(handler: CallHandler) -> CallHandler:
            self.register(name, handler, unsafe=unsafe)
            return handler

        return decorate

    def register_subscription(
        self,
        subscribe: str,
        notification: str,
        unsubscribe: str,
        handler: SubscriptionHandler,
        *,
        unsafe: bool = False,
        check_params: ParamsCheck | None = None,
    ) -> None:
        """Register a subscription, e.g. ("chain_subscribeNewHeads", "chain_newHead",
        "chain_unsubscribeNewHeads", handler). ``handler(params, sink)`` runs as a task."""
        if subscribe == unsubscribe:
            raise ValueError(f"subscribe and unsubscribe names must differ ({subscribe!r})")
        self._claim(subscribe)
        self._claim(unsubscribe)
        if not isinstance(notification, str) or not notification:
            raise ValueError(f"notification name must be a non-empty string, got {notification!r}")
        spec = SubscriptionSpec(subscribe, notification, unsubscribe, handler, unsafe, check_params)
        self._subscriptions[subscribe] = spec
        self._unsubscriptions[unsubscribe] = spec

    def subscription(
        self,
        subscribe: str,
        notification: str,
        unsubscribe: str,
        *,
        unsafe: bool = False,
        check_params: ParamsCheck | None = None,
    ) -> Callable[[SubscriptionHandler], SubscriptionHandler]:
        """Decorator form of `register_subscription`."""

        def decorate(handler: SubscriptionHandler) -> SubscriptionHandler:
            self.register_subscription(
                subscribe,
                notification,
                unsubscribe,
                handler,
                unsafe=unsafe,
                check_params=check_params,
            )
            return handler

        return decorate

    def merge(self, other: MethodTable) -> None:
        """Add every entry of ``other``; a name clash raises ValueError."""
        for spec in other._methods.values():
            self.register(spec.name, spec.handler, unsafe=spec.unsafe)
        for sub in other._subscriptions.values():
            self.register_subscription(
                sub.subscribe,
                sub.notification,
                sub.unsubscribe,
                sub.handler,
                unsafe=sub.unsafe,
                check_params=sub.check_params,
            )

    def get_method(self, name: str) -> MethodSpec | None:
        """The plain call registered under ``name``, if any."""
        return self._methods.get(name)

    def get_subscription(self, subscribe: str) -> SubscriptionSpec | None:
        """The subscription whose subscribe method is ``subscribe``, if any."""
        return self._subscriptions.get(subscribe)

    def get_unsubscription(self, unsubscribe: str) -> SubscriptionSpec | None:
        """The subscription whose unsubscribe method is ``unsubscribe``, if any."""
        return self._unsubscriptions.get(unsubscribe)

    def methods(self) -> Iterator[MethodSpec]:
        """All plain calls."""
        return iter(self._methods.values())

    def subscriptions(self) -> Iterator[SubscriptionSpec]:
        """All subscriptions."""
        return iter(self._subscriptions.values())

    def names(self) -> list[str]:
        """Every callable name (calls, subscribe and unsubscribe methods), sorted."""
        return sorted([*self._methods, *self._subscriptions, *self._unsubscriptions])

    def __contains__(self, name: object) -> bool:
        return name in self._methods or name in self._subscriptions or name in self._unsubscriptions

    def __len__(self) -> int:
        return len(self._methods) + len(self._subscriptions) + len(self._unsubscriptions)


# --- params binding ------------------------------------------------------------------


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_JSON_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
}


def _accepts(tp: type, value: Any) -> bool:
    # JSON has no bool/int distinction problem, Python does: True is an int.
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, tp)


def _kind(hint: Any) -> ParamKind | None:
    """The `ParamKind` of an ``Annotated[T, kind]`` annotation, else None."""
    if typing.get_origin(hint) is not Annotated:
        return None
    for meta in hint.__metadata__:
        if callable(getattr(meta, "parse", None)):
            return typing.cast(ParamKind, meta)
    return None


def _checker(hint: Any) -> tuple[tuple[type, ...], bool, str] | None:
    """(accepted base types, null allowed, description) for a simple annotation, else None.

    Only the shapes JSON can carry are checked (str, int, float, bool, list, dict and
    their Optional/Union); anything richer is left to the handler.
    """
    if hint is None or hint is Any:
        return None
    origin = typing.get_origin(hint)
    if origin is Union or isinstance(hint, types.UnionType):
        members = typing.get_args(hint)
    else:
        members = (hint,)
    bases: list[type] = []
    nullable = False
    for member in members:
        if member is type(None):
            nullable = True
            continue
        base = typing.get_origin(member) or member
        if base not in _JSON_NAMES:
            return None
        bases.append(base)
    words = [_JSON_NAMES[b] for b in bases] + (["null"] if nullable else [])
    return tuple(bases), nullable, " or ".join(words)


def _check_value(
    index: int, name: str, value: Any, check: tuple[tuple[type, ...], bool, str]
) -> None:
    bases, nullable, words = check
    if value is None:
        if nullable:
            return
    elif any(_accepts(tp, value) for tp in bases):
        return
    raise InvalidParams(
        f"Invalid params: param {index} '{name}' must be {words}, got {json_type(value)}"
    )


def parse_params(params: Params, names: Sequence[str], *, required: int | None = None) -> list[Any]:
    """Bind positional or named ``params`` to ``names``; missing optional ones are None.

    ``required`` is how many leading names must be present (default: all). Raises
    InvalidParams naming the offending param: too many, missing, or unknown names.
    """
    n_names = len(names)
    n_required = n_names if required is None else required
    if isinstance(params, list):
        given = len(params)
        if given > n_names:
            raise InvalidParams(
                f"Invalid params: expected at most {n_names} "
                f"({', '.join(names) or 'none'}), got {given}"
            )
        if given < n_required:
            raise InvalidParams(f"Invalid params: missing required param {given} '{names[given]}'")
        return [*params, *([None] * (n_names - given))]
    if isinstance(params, dict):
        unknown = [k for k in params if k not in names]
        if unknown:
            raise InvalidParams(
                f"Invalid params: unknown param '{unknown[0]}' "
                f"(accepted: {', '.join(names) or 'none'})"
            )
        for i in range(n_required):
            if names[i] not in params:
                raise InvalidParams(f"Invalid params: missing required param {i} '{names[i]}'")
        return [params.get(name) for name in names]
    raise InvalidParams(f"Invalid params: expected an array or an object, got {json_type(params)}")


def bind_params(fn: Callable[..., Awaitable[Any]]) -> CallHandler:
    """Wrap ``async def f(a: str, b: int | None = None)`` as a ``handler(params)``.

    Positional arrays map in order and may omit trailing defaulted params (they take
    the default unparsed); objects map by name. A param annotated
    ``Annotated[T, kind]`` is parsed by ``kind.parse`` and the method gets its result;
    a refusal raises -32602 ``param <i> '<name>' <reason>``. Other annotations that are
    JSON shapes (str, int, float, bool, list, dict, Optional/unions of them) are checked;
    a mismatch raises -32602 such as ``param 0 'hash' must be a string or null, got
    integer``.
    """
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    names: list[str] = []
    defaults: list[Any] = []
    for p in signature.parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise TypeError(f"bind_params: {fn.__name__} param {p.name!r} must be positional")
        names.append(p.name)
        defaults.append(p.default)
    n_names = len(names)
    n_required = sum(1 for d in defaults if d is inspect.Parameter.empty)
    if any(d is inspect.Parameter.empty for d in defaults[n_required:]):
        raise TypeError(f"bind_params: {fn.__name__} has a required param after a defaulted one")
    checks = [_kind(hints.get(name)) or _checker(hints.get(name)) for name in names]
    name_set = frozenset(names)
    joined = ", ".join(names) or "none"

    @functools.wraps(fn)
    async def handler(params: Params) -> Any:
        if type(params) is list:
            given = len(params)
            if given > n_names:
                raise InvalidParams(
                    f"Invalid params: expected at most {n_names} ({joined}), got {given}"
                )
            if given < n_required:
                raise InvalidParams(
                    f"Invalid params: missing required param {given} '{names[given]}'"
                )
            args = list(params)
        elif type(params) is dict:
            for key in params:
                if key not in name_set:
                    raise InvalidParams(
                        f"Invalid params: unknown param '{key}' (accepted: {joined})"
                    )
            args = []
            for i, name in enumerate(names):
                if name in params:
                    args.append(params[name])
                elif i < n_required:
                    raise InvalidParams(f"Invalid params: missing required param {i} '{name}'")
                else:
                    args.append(defaults[i])
        else:
            raise InvalidParams(
                f"Invalid params: expected an array or an object, got {json_type(params)}"
            )
        for i, value in enumerate(args):
            check = checks[i]
            if check is None:
                continue
            if isinstance(check, tuple):
                _check_value(i, names[i], value, check)
            elif type(params) is list or names[i] in params:  # not a default left out
                try:
                    args[i] = check.parse(value)
                except InvalidParams as exc:
                    raise InvalidParams(f"Invalid params: param {i} '{names[i]}' {exc.message}") from None
        return await fn(*args)

    return handler
