"""The JSON-RPC 2.0 server: HTTP POST and WebSocket on one port, plus ``GET /health``.

Wire behaviour, and where it comes from:

* JSON-RPC 2.0 (https://www.jsonrpc.org/specification): single requests, batches,
  notifications (a request without an ``id`` member gets no response, even when it
  fails), ``id`` a string, number or null, error codes -32700/-32600/-32601/-32602/
  -32603. An empty batch is one -32600 error object (spec §6 example). A request or
  batch that produces no response at all gets **HTTP 204 No Content** with an empty
  body (spec §6: "should return nothing at all"; 204 is HTTP's status for exactly
  that) and no frame over WebSocket.
* Substrate/jsonrpsee: one port for HTTP and WebSocket; subscriptions only over
  WebSocket; a subscription id is a random string; notifications are
  ``{"jsonrpc":"2.0","method":NOTIF,"params":{"subscription":ID,"result":...}}``;
  unsubscribing an unknown id returns ``false``; ``rpc_methods`` returns
  ``{"methods":[...]}`` listing every registered name (unsafe ones too, as Substrate does); unsafe methods are refused externally with -32601 "RPC call is
  unsafe to be called externally"; too many connections gets HTTP 429 like jsonrpsee;
  limit errors use jsonrpsee's codes (-32006 too many subscriptions, -32007 request too
  big, -32008 response too big, -32010 batch too large); ``GET /health`` answers with
  ``system_health``'s result like Substrate's health proxy.

Limits (all configurable; sizes are in bytes here, the CLI's ``--rpc-max-*-size`` flags
are MiB like Substrate's and convert with `MIB`):

* request size: HTTP bodies over the limit get 413 with a -32007 error body. A WebSocket
  message over the limit gets a -32007 error response and the connection survives, up to
  twice the limit; beyond that aiohttp closes the socket with 1009 (message too big) so
  that a peer cannot make the server buffer unbounded frames.
* response size: an oversized result becomes a -32008 error for that request.
* batch length: more entries than ``max_batch_len`` is one -32010 error.
* nesting depth: JSON nested deeper than ``max_depth`` is a -32700 error that says so
  (never a RecursionError); the bracket count is a C-speed pre-check, so ordinary
  requests never pay for the exact depth walk.
* connections: open WebSockets plus in-flight HTTP requests; over ``max_connections``
  an HTTP request or WebSocket upgrade gets 429. Idle keep-alive sockets are not counted.
* subscriptions per connection: over the limit, the subscribe call gets -32006.
* slow readers: notifications go through a bounded queue per connection
  (``ws_queue_size``); when it is full the subscription that could not queue is dropped
  (its handler is cancelled, a warning is logged) and the connection keeps working.

Invalid UTF-8 is -32700 over HTTP and in binary WebSocket frames; in a *text* frame,
RFC 6455 §8.1 requires failing the connection, which aiohttp does (close code 1007).

Requests on one WebSocket are answered one at a time in arrival order (like HTTP/1.1
on one connection); subscription handlers run as their own tasks, so a long stream
never blocks calls.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Sequence
from typing import Any, Final, Literal

import msgspec
from aiohttp import WSMsgType, web

from rpc.errors import (
    BatchTooLarge,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    OversizedRequest,
    OversizedResponse,
    ParseError,
    RpcError,
    SubscriptionsUnsupported,
    TooManySubscriptions,
    UnsafeRpcCalled,
)
from rpc.methods import MethodTable, Params, Subscription, SubscriptionSpec

__all__ = [
    "DEFAULT_CORS",
    "DEFAULT_MAX_BATCH_LEN",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_REQUEST_SIZE",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "MIB",
    "RpcMethodsPolicy",
    "RpcServer",
]

log = logging.getLogger("polchain.rpc")

MIB: Final = 1024 * 1024
# Substrate's RPC_DEFAULT_MAX_REQUEST_SIZE_MB / RPC_DEFAULT_MAX_RESPONSE_SIZE_MB.
DEFAULT_MAX_REQUEST_SIZE: Final = 15 * MIB
DEFAULT_MAX_RESPONSE_SIZE: Final = 15 * MIB
DEFAULT_MAX_BATCH_LEN: Final = 256
# serde_json (Substrate's parser) stops at 128; 64 leaves room for every real request.
DEFAULT_MAX_DEPTH: Final = 64
# Substrate's default --rpc-cors when not in --dev.
DEFAULT_CORS: Final = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://polkadot.js.org",
)

RpcMethodsPolicy = Literal["auto", "safe", "unsafe"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

_CALL: Final = 0
_SUBSCRIBE: Final = 1
_UNSUBSCRIBE: Final = 2
_DENIED: Final = 3

_JSON: Final = "application/json"
_TEXT: Final = WSMsgType.TEXT


def _error_response(error: RpcError, rid: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error.to_wire(), "id": rid}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve anywhere


def _exceeds_depth(value: Any, limit: int) -> bool:
    """True if ``value`` nests containers deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if type(node) is dict else node
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


class _CorsPolicy:
    """Substrate-style origin list: exact origins, ``scheme://host:*`` any port, or all."""

    __slots__ = ("_allow_all", "_exact", "_port_wildcards")

    def __init__(self, cors: str | Sequence[str] | None) -> None:
        if cors is None:
            cors = DEFAULT_CORS
        self._allow_all = cors == "all"
        self._exact: set[str] = set()
        self._port_wildcards: list[str] = []
        if not self._allow_all:
            if isinstance(cors, str):
                raise ValueError(f"cors must be 'all' or a list of origins, got {cors!r}")
            for origin in cors:
                if origin.endswith(":*"):
                    self._port_wildcards.append(origin[:-1])  # keep the ':'
                    self._exact.add(origin[:-2])  # the default port, written without one
                else:
                    self._exact.add(origin)

    def is_allowed(self, origin: str) -> bool:
        if self._allow_all or origin in self._exact:
            return True
        for prefix in self._port_wildcards:
            if origin.startswith(prefix) and origin[len(prefix) :].isdigit():
                return True
        return False


class _WsConnection:
    """Per-WebSocket state: its subscriptions and the bounded outbound notification queue."""

    __slots__ = ("closed", "pending", "queue", "queue_size", "subs", "writer", "ws")

    def __init__(self, ws: web.WebSocketResponse, queue_size: int) -> None:
        self.ws = ws
        self.subs: dict[str, tuple[Subscription, SubscriptionSpec]] = {}
        # Subscriptions accepted while handling the current message; their handlers
        # start only after the response carrying their id has been written.
        self.pending: list[tuple[Subscription, SubscriptionSpec, Params]] = []
        self.queue_size = queue_size
        self.queue: asyncio.Queue[bytes] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.closed = False

    def push(self, payload: bytes) -> bool:
        """Queue a notification; False when the queue is full (the caller drops the sub)."""
        if self.closed:
            return False
        queue = self.queue
        if queue is None:
            # Lazily: connections that never subscribe pay for neither queue nor task.
            queue = self.queue = asyncio.Queue(self.queue_size)
            self.writer = asyncio.get_running_loop().create_task(self._write_loop(queue))
        try:
            queue.put_nowait(payload)
        except asyncio.QueueFull:
            return False
        return True

    def forget(self, sub: Subscription) -> None:
        self.subs.pop(sub.id, None)

    async def _write_loop(self, queue: asyncio.Queue[bytes]) -> None:
        ws = self.ws
        try:
            while True:
                payload = await queue.get()
                await ws.send_frame(payload, _TEXT)
        except (ConnectionError, RuntimeError):
            # The peer went away; the reader loop notices and cleans up.
            pass

    async def close(self) -> None:
        """Cancel every subscription and the writer; idempotent."""
        if self.closed:
            return
        self.closed = True
        subs = list(self.subs.values())
        self.subs.clear()
        tasks: list[asyncio.Task[Any]] = []
        for sub, _spec in subs:
            task = sub._task
            sub.close()
            if task is not None:
                tasks.append(task)
        for sub, _spec, _params in self.pending:
            sub.close()
        self.pending.clear()
        if self.writer is not None:
            self.writer.cancel()
            tasks.append(self.writer)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class RpcServer:
    """JSON-RPC 2.0 over HTTP POST and WebSocket on one aiohttp port.

    Run it inside an existing event loop: ``await server.start()`` binds and returns
    (the node keeps producing blocks on the same loop), ``await server.stop()`` closes
    WebSockets with 1001 and waits for in-flight HTTP requests. ``async with`` does both.
    ``port=0`` binds a free port; ``server.port`` is the bound one.

    ``rpc_methods`` follows Substrate's ``--rpc-methods``: "unsafe" allows every method,
    "safe" refuses unsafe ones everywhere, "auto" refuses them unless ``host`` is a
    loopback address. ``cors`` is None (Substrate's default list), "all", or a list of
    origins where ``scheme://host:*`` matches any port.
    """

    def __init__(
        self,
        methods: MethodTable,
        *,
        host: str = "127.0.0.1",
        port: int = 9944,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        max_connections: int = 100,
        max_subscriptions_per_connection: int = 1024,
        max_batch_len: int = DEFAULT_MAX_BATCH_LEN,
        max_depth: int = DEFAULT_MAX_DEPTH,
        cors: str | Sequence[str] | None = None,
        rpc_methods: RpcMethodsPolicy = "auto",
        ws_queue_size: int = 1024,
        shutdown_timeout: float = 5.0,
    ) -> None:
        if rpc_methods not in ("auto", "safe", "unsafe"):
            raise ValueError(f"rpc_methods must be 'auto', 'safe' or 'unsafe', got {rpc_methods!r}")
        for name, value in (
            ("max_request_size", max_request_size),
            ("max_response_size", max_response_size),
            ("max_connections", max_connections),
            ("max_batch_len", max_batch_len),
            ("max_depth", max_depth),
            ("ws_queue_size", ws_queue_size),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if max_subscriptions_per_connection < 0:
            raise ValueError("max_subscriptions_per_connection must not be negative")
        self.methods = methods
        self.host = host
        self.port = port
        self.max_request_size = max_request_size
        self.max_response_size = max_response_size
        self.max_connections = max_connections
        self.max_subscriptions_per_connection = max_subscriptions_per_connection
        self.max_batch_len = max_batch_len
        self.max_depth = max_depth
        self.rpc_methods = rpc_methods
        self.deny_unsafe = rpc_methods == "safe" or (
            rpc_methods == "auto" and not _is_loopback(host)
        )
        self.ws_queue_size = ws_queue_size
        self.shutdown_timeout = shutdown_timeout
        self._cors = _CorsPolicy(cors)
        self._dispatch: dict[str, tuple[int, Any]] = {}
        self._active = 0
        self._connections: set[_WsConnection] = set()
        self._runner: web.AppRunner | None = None

    # --- lifecycle -------------------------------------------------------------------

    @property
    def active_connections(self) -> int:
        """Open WebSockets plus HTTP requests being handled right now."""
        return self._active

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound server (use ws:// for WebSocket)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _build_dispatch(self) -> dict[str, tuple[int, Any]]:
        dispatch: dict[str, tuple[int, Any]] = {}
        for spec in self.methods.methods():
            if spec.unsafe and self.deny_unsafe:
                dispatch[spec.name] = (_DENIED, None)
            else:
                dispatch[spec.name] = (_CALL, spec.handler)
        for sub in self.methods.subscriptions():
            if sub.unsafe and self.deny_unsafe:
                dispatch[sub.subscribe] = (_DENIED, None)
                dispatch[sub.unsubscribe] = (_DENIED, None)
            else:
                dispatch[sub.subscribe] = (_SUBSCRIBE, sub)
                dispatch[sub.unsubscribe] = (_UNSUBSCRIBE, sub)
        if "rpc_methods" not in dispatch:
            names = sorted({*dispatch, "rpc_methods"})

            async def rpc_methods(params: Params) -> dict[str, list[str]]:
                return {"methods": names}

            dispatch["rpc_methods"] = (_CALL, rpc_methods)
        return dispatch

    async def start(self) -> None:
        """Bind and start serving on the running loop; returns once listening."""
        if self._runner is not None:
            raise RuntimeError("RpcServer already started")
        self._dispatch = self._build_dispatch()
        app = web.Application(client_max_size=self.max_request_size)
        app.router.add_post("/", self._handle_post)
        app.router.add_get("/", self._handle_get)
        app.router.add_route("OPTIONS", "/", self._handle_preflight)
        app.router.add_get("/health", self._handle_health)
        app.router.add_get("/health/readiness", self._handle_readiness)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=self.shutdown_timeout
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("rpc: listening on %s (http and ws)", self.url)

    async def stop(self) -> None:
        """Close WebSockets (1001, cancelling subscriptions), finish HTTP, unbind."""
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        for conn in list(self._connections):
            await conn.close()
            await conn.ws.close(code=1001, message=b"server shutting down")
        await runner.cleanup()

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- HTTP ------------------------------------------------------------------------

    def _cors_headers(self, origin: str | None) -> dict[str, str] | None:
        if origin is None:
            return None
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def _refusal(self, request: web.Request) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and not self._cors.is_allowed(origin):
            return web.Response(status=403, text=f"Origin {origin} is not allowed by --rpc-cors\n")
        if self._active >= self.max_connections:
            return web.Response(
                status=429,
                text="Too many connections. Please try again later.\n",
                headers={"Connection": "close"},
            )
        return None

    def _too_large(self, origin: str | None, size: int | None) -> web.Response:
        what = f"{size} bytes" if size is not None else "the body"
        error = OversizedRequest(data=f"{what} exceeds the limit of {self.max_request_size} bytes")
        return web.Response(
            status=413,
            body=_encode(_error_response(error, None)),
            content_type=_JSON,
            headers=self._cors_headers(origin),
        )

    async def _handle_post(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        origin = request.headers.get("Origin")
        length = request.content_length
        if length is not None and length > self.max_request_size:
            return self._too_large(origin, length)
        self._active += 1
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return self._too_large(origin, None)
            out = await self._handle_payload(body, None)
        finally:
            self._active -= 1
        if out is None:
            return web.Response(status=204, headers=self._cors_headers(origin))
        return web.Response(body=out, content_type=_JSON, headers=self._cors_headers(origin))

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(
                status=405,
                text="Used HTTP Method is not allowed. POST or OPTIONS is required\n",
                headers={"Allow": "POST, OPTIONS"},
            )
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        return await self._serve_ws(request)

    async def _handle_preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        if origin is not None and not self._cors.is_allowed(origin):
            return web.Response(status=403, text=f"Origin {origin} is not allowed by --rpc-cors\n")
        headers = {
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", "content-type"
            ),
            "Access-Control-Max-Age": "86400",
        }
        if origin is not None:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Vary"] = "Origin"
        return web.Response(status=200, headers=headers)

    async def _get_health(self) -> Any:
        entry = self._dispatch.get("system_health")
        if entry is None or entry[0] != _CALL:
            return {}
        return await entry[1]([])

    async def _handle_health(self, request: web.Request) -> web.Response:
        try:
            health = await self._get_health()
        except Exception:
            log.exception("rpc: system_health failed for GET /health")
            return web.Response(status=500, text="system_health failed\n")
        return web.Response(body=_encode(health), content_type=_JSON)

    async def _handle_readiness(self, request: web.Request) -> web.Response:
        # Substrate's /health/readiness: ready when not syncing and, if the node should
        # have peers, it has some.
        try:
            health = await self._get_health()
        except Exception:
            log.exception("rpc: system_health failed for GET /health/readiness")
            return web.Response(status=500)
        ready = (
            isinstance(health, dict)
            and not health.get("isSyncing", False)
            and (health.get("peers", 0) > 0 or not health.get("shouldHavePeers", False))
        )
        return web.Response(status=200 if ready else 500)

    # --- WebSocket -------------------------------------------------------------------

    async def _serve_ws(self, request: web.Request) -> web.WebSocketResponse:
        # Frames up to twice the limit are read so they can be answered with -32007 and
        # the connection kept; anything larger is a protocol-level refusal (1009).
        ws = web.WebSocketResponse(max_msg_size=2 * self.max_request_size, compress=False)
        origin = request.headers.get("Origin")
        if origin is not None:
            ws.headers["Access-Control-Allow-Origin"] = origin
        await ws.prepare(request)
        conn = _WsConnection(ws, self.ws_queue_size)
        self._active += 1
        self._connections.add(conn)
        try:
            while True:
                msg = await ws.receive()
                kind = msg.type
                if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                    out = await self._handle_payload(msg.data, conn)
                    if out is not None:
                        await ws.send_frame(out, _TEXT)
                    if conn.pending:
                        self._start_pending(conn)
                elif kind is WSMsgType.ERROR:
                    log.debug("rpc: websocket error: %s", ws.exception())
                    break
                elif kind in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
        except (ConnectionError, RuntimeError) as e:
            log.debug("rpc: websocket dropped: %s", e)
        finally:
            self._active -= 1
            self._connections.discard(conn)
            await conn.close()
            if not ws.closed:
                await ws.close()
        return ws

    def _start_pending(self, conn: _WsConnection) -> None:
        loop = asyncio.get_running_loop()
        pending = conn.pending
        conn.pending = []
        for sub, spec, params in pending:
            if not sub.closed:
                sub._task = loop.create_task(self._run_subscription(spec, params, sub))

    async def _run_subscription(
        self, spec: SubscriptionSpec, params: Params, sub: Subscription
    ) -> None:
        try:
            await spec.handler(params, sub)
        except RpcError as e:
            sub.send_error(e)
        except Exception:
            log.exception("rpc: subscription %s (%s) failed", sub.id, spec.subscribe)
            sub.send_error(InternalError())
        finally:
            sub.close()

    def _subscribe(self, spec: SubscriptionSpec, params: Params, conn: _WsConnection | None) -> str:
        if conn is None:
            raise SubscriptionsUnsupported(data=f"{spec.subscribe} needs a WebSocket connection")
        if len(conn.subs) >= self.max_subscriptions_per_connection:
            raise TooManySubscriptions(
                data=f"this connection already has {len(conn.subs)} subscriptions "
                f"(limit {self.max_subscriptions_per_connection})"
            )
        if spec.check_params is not None:
            spec.check_params(params)
        sub_id = secrets.token_urlsafe(12)
        while sub_id in conn.subs:
            sub_id = secrets.token_urlsafe(12)
        sub = Subscription(sub_id, spec.notification, conn.push, conn.forget)
        conn.subs[sub_id] = (sub, spec)
        conn.pending.append((sub, spec, params))
        return sub_id

    def _unsubscribe(
        self, spec: SubscriptionSpec, params: Params, conn: _WsConnection | None
    ) -> bool:
        if conn is None:
            raise SubscriptionsUnsupported(data=f"{spec.unsubscribe} needs a WebSocket connection")
        if type(params) is list and len(params) == 1:
            sub_id = params[0]
        elif type(params) is dict and len(params) == 1 and "subscription" in params:
            sub_id = params["subscription"]
        else:
            raise InvalidParams(
                "Invalid params: expected exactly one param 0 'subscription' (the subscription id)"
            )
        if type(sub_id) is not str:
            raise InvalidParams("Invalid params: param 0 'subscription' must be a string")
        entry = conn.subs.get(sub_id)
        if entry is None or entry[1] is not spec:
            return False
        entry[0].close()
        return True

    # --- JSON-RPC --------------------------------------------------------------------

    async def _handle_payload(self, body: bytes | str, conn: _WsConnection | None) -> bytes | None:
        """Answer one HTTP body or WebSocket message; None means "send nothing"."""
        error: RpcError
        if len(body) > self.max_request_size:
            error = OversizedRequest(
                data=f"{len(body)} bytes exceeds the limit of {self.max_request_size} bytes"
            )
            return _encode(_error_response(error, None))
        try:
            request = _decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as e:
            return _encode(_error_response(ParseError(data=str(e)), None))
        except RecursionError:
            return _encode(_error_response(self._too_deep(), None))
        if isinstance(body, bytes):
            brackets = body.count(b"[") + body.count(b"{")
        else:
            brackets = body.count("[") + body.count("{")
        if brackets > self.max_depth and _exceeds_depth(request, self.max_depth):
            return _encode(_error_response(self._too_deep(), None))

        if type(request) is dict:
            response = await self._handle_request(request, conn)
            if response is None:
                return None
            return self._encode_response(response)
        if type(request) is list:
            if not request:
                error = InvalidRequest(data="empty batch")
                return _encode(_error_response(error, None))
            if len(request) > self.max_batch_len:
                error = BatchTooLarge(
                    data=f"{len(request)} requests exceeds the limit of {self.max_batch_len}"
                )
                return _encode(_error_response(error, None))
            parts: list[bytes] = []
            for item in request:
                response = await self._handle_request(item, conn)
                if response is not None:
                    parts.append(self._encode_response(response))
            if not parts:
                return None
            out = b"[" + b",".join(parts) + b"]"
            if len(out) > self.max_response_size:
                error = OversizedResponse(
                    data=f"the batch response is {len(out)} bytes, "
                    f"over the limit of {self.max_response_size}"
                )
                return _encode(_error_response(error, None))
            return out
        error = InvalidRequest(data="expected a request object or a batch array")
        return _encode(_error_response(error, None))

    def _too_deep(self) -> ParseError:
        return ParseError(data=f"JSON nested deeper than {self.max_depth} levels")

    def _encode_response(self, response: dict[str, Any]) -> bytes:
        try:
            out = _encode(response)
        except (TypeError, ValueError, OverflowError):
            log.exception("rpc: result for id %r is not JSON-encodable", response.get("id"))
            return _encode(_error_response(InternalError(), response.get("id")))
        if len(out) > self.max_response_size:
            error = OversizedResponse(
                data=f"{len(out)} bytes exceeds the limit of {self.max_response_size} bytes"
            )
            return _encode(_error_response(error, response.get("id")))
        return out

    async def _handle_request(
        self, request: Any, conn: _WsConnection | None
    ) -> dict[str, Any] | None:
        """Validate and run one Request object (spec §4); None for a notification."""
        if type(request) is not dict:
            return _error_response(InvalidRequest(data="a request must be an object"), None)
        has_id = "id" in request
        rid = request.get("id")
        if has_id and not (
            rid is None or type(rid) is str or type(rid) is int or type(rid) is float
        ):
            return _error_response(
                InvalidRequest(data='"id" must be a string, a number or null'), None
            )
        if request.get("jsonrpc") != "2.0":
            return _error_response(InvalidRequest(data='"jsonrpc" must be exactly "2.0"'), rid)
        method = request.get("method")
        if type(method) is not str:
            return _error_response(InvalidRequest(data='"method" must be a string'), rid)
        if "params" in request:
            params = request["params"]
            if type(params) is not list and type(params) is not dict:
                return _error_response(
                    InvalidRequest(data='"params" must be an array or an object'), rid
                )
        else:
            params = []

        entry = self._dispatch.get(method)
        if entry is None:
            if not has_id:
                return None
            return _error_response(MethodNotFound(data=f"no method named {method!r}"), rid)
        kind, target = entry
        try:
            if kind == _CALL:
                result = await target(params)
            elif kind == _SUBSCRIBE:
                if not has_id:
                    return None  # the caller could never learn the subscription id
                result = self._subscribe(target, params, conn)
            elif kind == _UNSUBSCRIBE:
                result = self._unsubscribe(target, params, conn)
            else:
                raise UnsafeRpcCalled(
                    data=f"{method} is unsafe; start the node with --rpc-methods unsafe"
                )
        except RpcError as e:
            return _error_response(e, rid) if has_id else None
        except Exception:
            log.exception("rpc: method %s failed", method)
            return _error_response(InternalError(), rid) if has_id else None
        if not has_id:
            return None
        return {"jsonrpc": "2.0", "result": result, "id": rid}
