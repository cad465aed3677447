"""JSON-RPC 2.0 client for the node: async `RpcClient` and the thread-backed `SyncRpcClient`.

`RpcClient(url)` speaks HTTP (one keep-alive ``aiohttp.ClientSession``) when ``url`` is
``http(s)://`` and WebSocket when it is ``ws(s)://``. Subscriptions always need a
WebSocket; with an HTTP url the client opens one to the same host on first use.

* ``await client.call(method, params)`` returns the result or raises `RpcCallError`
  (code, message, data) for an error response, `RpcTransportError` when no JSON-RPC
  answer came back.
* ``await client.batch([(method, params), ...])`` returns results in request order, an
  `RpcCallError` instance in place of each failed entry.
* ``sub = await client.subscribe(method, params, unsubscribe_method)`` returns a
  `ClientSubscription`: ``async for result in sub`` yields notification results in order;
  ``await sub.unsubscribe()`` ends it.

`SyncRpcClient` runs an `RpcClient` on a private event loop in a daemon thread, for
the CLI and for tests that are not async.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, TypeVar

import aiohttp
import msgspec

from rpc.errors import RpcCallError, RpcTransportError
from rpc.methods import Params

__all__ = ["ClientSubscription", "RpcClient", "SyncClientSubscription", "SyncRpcClient"]

_T = TypeVar("_T")
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_JSON_HEADERS = {"Content-Type": "application/json"}
_END = object()  # queued when a subscription can deliver nothing more


def _result_of(response: Any) -> Any:
    """The ``result`` of one response object, or raise its error."""
    if not isinstance(response, dict):
        raise RpcTransportError(data=f"not a JSON-RPC response: {response!r:.200}")
    if "error" in response:
        raise RpcCallError.from_wire(response["error"])
    if "result" not in response:
        raise RpcTransportError(data=f"response has neither result nor error: {response!r:.200}")
    return response["result"]


class ClientSubscription:
    """An open subscription: async-iterate for results, `unsubscribe` to end it.

    Iteration stops when the subscription ends (unsubscribed, or the connection
    closed); an error notification from the server raises `RpcCallError`.
    """

    def __init__(
        self, client: RpcClient, sub_id: str, unsubscribe_method: str, queue: asyncio.Queue[Any]
    ) -> None:
        self.id = sub_id
        self.unsubscribe_method = unsubscribe_method
        self._client = client
        self._queue = queue
        self._done = False

    def __aiter__(self) -> ClientSubscription:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, RpcCallError):
            self._done = True
            raise item
        return item

    async def next(self, timeout: float | None = None) -> Any:
        """The next result, waiting at most ``timeout`` seconds (TimeoutError)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def unsubscribe(self) -> bool:
        """Call the unsubscribe method; True if the server still had the subscription."""
        self._client._subscriptions.pop(self.id, None)
        self._queue.put_nowait(_END)
        if self._client._ws is None or self._client._ws.closed:
            return False
        return bool(await self._client._ws_call(self.unsubscribe_method, [self.id]))

    async def __aenter__(self) -> ClientSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._done:
            await self.unsubscribe()


class RpcClient:
    """Async JSON-RPC client over HTTP keep-alive or one WebSocket (see module doc)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:9944",
        *,
        timeout: float = 30.0,
        max_msg_size: int = 64 * 1024 * 1024,
    ) -> None:
        if url.startswith(("ws://", "wss://")):
            self.ws_url = url
            self.http_url = "http" + url[2:]
            self.use_ws = True
        elif url.startswith(("http://", "https://")):
            self.http_url = url
            self.ws_url = "ws" + url[4:]
            self.use_ws = False
        else:
            raise ValueError(f"url must start with http://, https://, ws:// or wss://, got {url!r}")
        self.timeout = timeout
        self.max_msg_size = max_msg_size
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[Any, asyncio.Future[Any]] = {}
        # Request id -> the queue a subscribe response's id must be bound to. The reader
        # binds it before it reads the next frame, so no notification can be missed.
        self._pending_subs: dict[Any, asyncio.Queue[Any]] = {}
        self._subscriptions: dict[str, asyncio.Queue[Any]] = {}

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        """Close the WebSocket (ending subscriptions) and the HTTP session."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- calls -----------------------------------------------------------------------

    async def call(self, method: str, params: Params | None = None) -> Any:
        """Call ``method``; its result, or RpcCallError for an error response."""
        if self.use_ws:
            return await self._ws_call(method, [] if params is None else params)
        request = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": [] if params is None else params,
        }
        return _result_of(await self._http_post(request))

    async def notify(self, method: str, params: Params | None = None) -> None:
        """Send a notification (no id, no response)."""
        request = {"jsonrpc": "2.0", "method": method, "params": [] if params is None else params}
        if self.use_ws:
            ws = await self._connect_ws()
            await ws.send_bytes(_encode(request))
        else:
            await self._http_post(request)

    async def batch(self, calls: Sequence[tuple[str, Params | None]]) -> list[Any]:
        """Send one batch; results in order, an RpcCallError in place of each failure."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        requests = [
            {
                "jsonrpc": "2.0",
                "id": rid,
                "method": method,
                "params": [] if params is None else params,
            }
            for rid, (method, params) in zip(ids, calls, strict=True)
        ]
        if self.use_ws:
            responses = await self._ws_batch(requests, ids)
        else:
            responses = await self._http_post(requests)
        if isinstance(responses, dict):
            # The whole batch was refused (too long, too big): one error object.
            raise RpcCallError.from_wire(responses.get("error"))
        if not isinstance(responses, list):
            raise RpcTransportError(data=f"not a batch response: {responses!r:.200}")
        by_id = {r.get("id"): r for r in responses if isinstance(r, dict)}
        out: list[Any] = []
        for rid in ids:
            response = by_id.get(rid)
            if response is None:
                out.append(RpcTransportError(data=f"no response for id {rid}"))
                continue
            try:
                out.append(_result_of(response))
            except RpcCallError as e:
                out.append(e)
        return out

    async def _http_post(self, payload: Any) -> Any:
        session = self._get_session()
        try:
            async with session.post(
                self.http_url, data=_encode(payload), headers=_JSON_HEADERS
            ) as resp:
                body = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as e:
            raise RpcTransportError(data=f"POST {self.http_url}: {e!r}") from e
        if status == 204 or not body:
            return None
        try:
            decoded = _decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            raise RpcTransportError(data=f"HTTP {status}: {body[:200]!r}") from e
        if status != 200 and not (isinstance(decoded, dict) and "error" in decoded):
            raise RpcTransportError(data=f"HTTP {status}: {body[:200]!r}")
        return decoded

    # --- WebSocket -------------------------------------------------------------------

    async def _connect_ws(self) -> aiohttp.ClientWebSocketResponse:
        ws = self._ws
        if ws is not None and not ws.closed:
            return ws
        async with self._ws_lock:
            if self._ws is not None and not self._ws.closed:
                return self._ws
            try:
                ws = await self._get_session().ws_connect(
                    self.ws_url, max_msg_size=self.max_msg_size, autoping=True
                )
            except aiohttp.WSServerHandshakeError as e:
                # The server answered the upgrade with a status (429: every WebSocket slot
                # is busy): say that, not the repr of aiohttp's request info.
                raise RpcTransportError(data=f"WebSocket {self.ws_url}: HTTP {e.status} {e.message}") from e
            except (TimeoutError, aiohttp.ClientError) as e:
                raise RpcTransportError(data=f"WebSocket {self.ws_url}: {e!r}") from e
            self._ws = ws
            self._reader = asyncio.get_running_loop().create_task(self._read_loop(ws))
            return ws

    async def _ws_call(self, method: str, params: Params) -> Any:
        return _result_of(await self._ws_request(method, params, None))

    async def _ws_request(
        self, method: str, params: Params, sub_queue: asyncio.Queue[Any] | None
    ) -> Any:
        ws = await self._connect_ws()
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        if sub_queue is not None:
            self._pending_subs[rid] = sub_queue
        try:
            await ws.send_bytes(
                _encode({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
            )
            return await asyncio.wait_for(future, self.timeout)
        except (aiohttp.ClientError, ConnectionError) as e:
            raise RpcTransportError(data=f"WebSocket send failed: {e!r}") from e
        except TimeoutError as e:
            raise RpcTransportError(data=f"no response to {method} in {self.timeout}s") from e
        finally:
            self._pending.pop(rid, None)
            self._pending_subs.pop(rid, None)

    async def _ws_batch(self, requests: list[dict[str, Any]], ids: list[int]) -> Any:
        ws = await self._connect_ws()
        # The batch response is one array; every id of the batch points at one future.
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        keys = [("batch", rid) for rid in ids]
        for key in keys:
            self._pending[key] = future
        try:
            await ws.send_bytes(_encode(requests))
            return await asyncio.wait_for(future, self.timeout)
        except (aiohttp.ClientError, ConnectionError) as e:
            raise RpcTransportError(data=f"WebSocket send failed: {e!r}") from e
        except TimeoutError as e:
            raise RpcTransportError(data=f"no batch response in {self.timeout}s") from e
        finally:
            for key in keys:
                self._pending.pop(key, None)

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                try:
                    message = _decode(msg.data)
                except (msgspec.DecodeError, UnicodeDecodeError):
                    continue
                self._route(message)
        finally:
            error = RpcTransportError(data="WebSocket closed")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            for queue in self._subscriptions.values():
                queue.put_nowait(_END)
            self._subscriptions.clear()

    def _route(self, message: Any) -> None:
        if isinstance(message, list):
            for item in message:
                if isinstance(item, dict):
                    future = self._pending.get(("batch", item.get("id")))
                    if future is not None:
                        if not future.done():
                            future.set_result(message)
                        return
            return
        if not isinstance(message, dict):
            return
        if "method" in message and "id" not in message:
            self._route_notification(message.get("params"))
            return
        rid = message.get("id")
        future = self._pending.get(rid)
        if future is None and rid is None:
            # A whole-batch refusal (too long, too big) is one error object with id null;
            # it belongs to the oldest batch in flight.
            future = next((f for k, f in self._pending.items() if isinstance(k, tuple)), None)
        if future is None:
            return
        sub_queue = self._pending_subs.pop(rid, None)
        if sub_queue is not None and isinstance(message.get("result"), str):
            self._subscriptions[message["result"]] = sub_queue
        if not future.done():
            future.set_result(message)

    def _route_notification(self, params: Any) -> None:
        if not isinstance(params, dict):
            return
        sub_id = params.get("subscription")
        if not isinstance(sub_id, str):
            return
        queue = self._subscriptions.get(sub_id)
        if queue is None:
            return
        if "error" in params:
            queue.put_nowait(RpcCallError.from_wire(params["error"]))
            self._subscriptions.pop(sub_id, None)
        else:
            queue.put_nowait(params.get("result"))

    async def subscribe(
        self, method: str, params: Params | None, unsubscribe_method: str
    ) -> ClientSubscription:
        """Subscribe over WebSocket; iterate the returned object for notification results."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        sub_id = _result_of(await self._ws_request(method, [] if params is None else params, queue))
        if not isinstance(sub_id, str):
            raise RpcTransportError(data=f"{method} returned {sub_id!r}, not a subscription id")
        return ClientSubscription(self, sub_id, unsubscribe_method, queue)


class SyncClientSubscription:
    """Blocking view of a `ClientSubscription` (iterate, or `next(timeout)`)."""

    def __init__(self, client: SyncRpcClient, sub: ClientSubscription) -> None:
        self._client = client
        self._sub = sub
        self.id = sub.id

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                yield self._client._run(self._sub.__anext__())
            except StopAsyncIteration:
                return

    def next(self, timeout: float | None = None) -> Any:
        """The next result; TimeoutError after ``timeout`` seconds."""
        return self._client._run(self._sub.next(timeout))

    def unsubscribe(self) -> bool:
        """End the subscription; True if the server still had it."""
        return self._client._run(self._sub.unsubscribe())


class SyncRpcClient:
    """Blocking `RpcClient`: the async client on its own loop in a daemon thread."""

    def __init__(self, url: str = "http://127.0.0.1:9944", *, timeout: float = 30.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="rpc-client", daemon=True
        )
        self._thread.start()
        self.timeout = timeout

        async def make() -> RpcClient:
            return RpcClient(url, timeout=timeout)

        self._client = self._run(make())

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout + 5.0)
        except FutureTimeoutError as e:
            future.cancel()
            raise RpcTransportError(data=f"no answer in {self.timeout}s") from e

    def call(self, method: str, params: Params | None = None) -> Any:
        """Blocking `RpcClient.call`."""
        return self._run(self._client.call(method, params))

    def notify(self, method: str, params: Params | None = None) -> None:
        """Blocking `RpcClient.notify`."""
        self._run(self._client.notify(method, params))

    def batch(self, calls: Sequence[tuple[str, Params | None]]) -> list[Any]:
        """Blocking `RpcClient.batch`."""
        return self._run(self._client.batch(calls))

    def subscribe(
        self, method: str, params: Params | None, unsubscribe_method: str
    ) -> SyncClientSubscription:
        """Blocking `RpcClient.subscribe`."""
        return SyncClientSubscription(
            self, self._run(self._client.subscribe(method, params, unsubscribe_method))
        )

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        if not self._loop.is_running():
            return
        try:
            self._run(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            self._loop.close()

    def __enter__(self) -> SyncRpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
