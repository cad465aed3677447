"""``ml_predict`` under load, on a real node behind a real RpcServer: a call over a limit of
one (MAX_PREDICT_OUTPUTS, MAX_PREDICT_WORK, the response cap) is refused before anything is
computed; predictions run on the RPC read threads, off the event loop; a call whose client has
gone is never computed; the answers are those of the float32 forward pass on the parsed rows,
bit for bit. (How responsive ``system_health`` stays while several run is a figure, not a
test: timed assertions failed under the suite's load.)

The models are the testers': softmax d=255 k=1024 (262,144 parameters), mlp d=1 h=62 k=4096
(tester18's F1: 159 rows of one number, a 1 KB request, made a 15 MB answer) and mlp d=64
h=3900 k=2 (261,302 parameters, few outputs), registered by extrinsics in an instantly sealed
block on a dev chain in LevelDB.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
import pytest
import rawws

import ml_runtime
from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from chain.pallets import models
from genesis.spec import load_chain_spec
from node.service import NodeConfig, NodeService
from rpc.api import build_method_table
from rpc.namespaces import ml as ml_namespace
from rpc.params import MAX_PREDICT_OUTPUTS, MAX_PREDICT_WORK
from rpc.reads import ReadOnlyState, run_read
from rpc.server import DEFAULT_MAX_RESPONSE_SIZE, RpcServer

SPEC = ml_runtime.ModelSpec("softmax", 255, 1024)
WIDE = ml_runtime.ModelSpec("mlp", 1, 4096, 62)  # tester18's F1
DEEP = ml_runtime.ModelSpec("mlp", 64, 2, 3900)  # 261,302 parameters: the dev chain allows 2^18


@asynccontextmanager
async def node_with_big_model(
    specs: tuple[ml_runtime.ModelSpec, ...] = (SPEC,), **server_options: Any
) -> AsyncIterator[tuple[NodeService, RpcServer, int]]:
    """A node with ``specs`` registered in one block (the first's id is yielded, the others
    follow it) behind a server with ``server_options``."""
    service = NodeService(NodeConfig(chain="dev", tmp=True, author="//Alice", instant_seal=True), load_chain_spec("dev"))
    try:
        chain = service.chain
        for nonce, spec in enumerate(specs):
            register = calls.RegisterModel(f"big{nonce}", spec.encode(), b"\x07" * 32)
            xt = sign_extrinsic(dev_keypair("Eve"), register, nonce=nonce, genesis_hash=chain.genesis_hash,
                                spec_version=chain.runtime.spec_version)
            service.submit(xt.encode())
        assert await service.author_block() is not None
        model = models.NEXT_MODEL_ID.get(ReadOnlyState(chain, None)) - len(specs)
        for i, spec in enumerate(specs):
            assert ml_runtime.ModelSpec.decode(models.MODELS.get(ReadOnlyState(chain, None), model + i).spec) == spec
        table = build_method_table(service, max_response_size=server_options.get("max_response_size", DEFAULT_MAX_RESPONSE_SIZE))
        async with RpcServer(table, port=0, **server_options) as server:
            yield service, server, model
    finally:
        service.close()


async def call(http: aiohttp.ClientSession, server: RpcServer, method: str, params: Any) -> dict[str, Any]:
    async with http.post(server.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as resp:
        return await resp.json()


def rows_of(n: int, seed: int = 3, d: int = SPEC.d) -> list[list[float]]:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32).astype(np.float64).tolist()


@pytest.fixture
def predictions(monkeypatch) -> list[str]:
    """The thread of every forward pass ml_predict runs."""
    threads: list[str] = []
    real = ml_runtime.predict

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(ml_namespace.ml_runtime, "predict", spy)
    return threads


async def test_an_answer_over_the_cap_is_refused_before_it_is_computed(predictions) -> None:
    async with node_with_big_model(max_response_size=200_000) as (_service, server, model), aiohttp.ClientSession() as http:
        most = ml_namespace.max_predict_rows(SPEC, server.max_response_size)
        assert most == 8  # the cap, not MAX_PREDICT_OUTPUTS (16 rows of 1,024), binds here
        answer = await call(http, server, "ml_predict", [model, rows_of(most + 1)])
        assert answer["error"]["code"] == -32008, answer
        assert answer["error"]["data"].endswith(f"over the limit of 200000 bytes: ask for at most {most} rows")
        assert predictions == []  # nothing computed
        fits = await call(http, server, "ml_predict", [model, rows_of(most)])
        assert len(fits["result"]["outputs"]) == most and len(predictions) == 1


async def test_a_call_over_the_outputs_limit_is_refused_before_it_is_computed(predictions) -> None:
    """tester18's F1: 159 rows of one number through 4,096 classes (a 1 KB request, a 15 MB
    answer at about 155 ms of CPU, and within the response cap) is -32602 naming
    MAX_PREDICT_OUTPUTS and the rows that fit; those are answered."""
    async with node_with_big_model((WIDE,)) as (_service, server, model), aiohttp.ClientSession() as http:
        answer = await call(http, server, "ml_predict", [model, [[0.5]] * 159])
        assert answer["error"] == {
            "code": -32602,
            "message": f"Invalid params: param 1 'inputs' must make at most {MAX_PREDICT_OUTPUTS} outputs (MAX_PREDICT_OUTPUTS), "
            f"got 651264: 159 rows of model {model}'s 4096; ask for at most 4 rows",
        }, answer
        assert predictions == []
        fits = await call(http, server, "ml_predict", [model, [[0.5]] * 4])
        assert len(fits["result"]["outputs"]) == 4 and len(fits["result"]["outputs"][0]) == 4096 and len(predictions) == 1


async def test_a_call_over_the_work_limit_is_refused_before_it_is_computed(predictions) -> None:
    """Few outputs, many parameters: 1,024 rows of 64 through 261,302 parameters (268 M
    multiply-adds, about 0.3 s of one core, a 34 KB answer) is -32602 naming MAX_PREDICT_WORK."""
    async with node_with_big_model((DEEP,)) as (_service, server, model), aiohttp.ClientSession() as http:
        most = MAX_PREDICT_WORK // DEEP.param_count
        assert most == ml_namespace.max_predict_rows(DEEP, server.max_response_size) == 64
        answer = await call(http, server, "ml_predict", [model, rows_of(1024, d=DEEP.d)])
        assert answer["error"] == {
            "code": -32602,
            "message": f"Invalid params: param 1 'inputs' must cost at most {MAX_PREDICT_WORK} multiply-adds (MAX_PREDICT_WORK: "
            f"rows x parameters), got {1024 * DEEP.param_count}: 1024 rows through model {model}'s {DEEP.param_count}; "
            f"ask for at most {most} rows",
        }, answer
        assert (await call(http, server, "ml_predict", [model, rows_of(most + 1, d=DEEP.d)]))["error"]["code"] == -32602
        assert predictions == []
        fits = await call(http, server, "ml_predict", [model, rows_of(most, d=DEEP.d)])
        assert len(fits["result"]["outputs"]) == most and len(predictions) == 1


async def test_a_call_whose_client_has_gone_is_not_computed(predictions) -> None:
    """tester18's F1, the queue: calls sent on sockets closed at once (HTTP, and WebSocket
    frames) while both read threads are busy were all computed later and their answers queued
    for nobody (300 of them took a node to 5.6 GB). Each is cancelled when its connection goes:
    none is computed once the threads are free, and the server holds no connection."""
    async with node_with_big_model((WIDE,)) as (_service, server, model):
        gate, started = threading.Event(), threading.Semaphore(0)

        def hold() -> None:
            started.release()
            gate.wait(30)

        holders = [asyncio.ensure_future(run_read(hold)) for _ in range(2)]
        try:
            for _ in range(2):
                assert await asyncio.to_thread(started.acquire, True, 10)
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ml_predict", "params": [model, [[0.5]] * 4]}).encode()
            request = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
            for _ in range(20):
                _reader, writer = await rawws.connect(server.port)
                writer.write(request)
                await writer.drain()
                writer.close()
            for _ in range(5):
                _reader, writer = await rawws.upgrade(server.port)
                writer.write(rawws.frame(body))
                await writer.drain()
                writer.close()
            for _ in range(100):  # the server sees them go
                if server.open_connections == 0:
                    break
                await asyncio.sleep(0.02)
        finally:
            gate.set()
            await asyncio.gather(*holders)
        for _ in range(25):  # time for any call still queued to run
            await run_read(lambda: None)
            await asyncio.sleep(0.02)
        assert predictions == []
        assert server.open_connections == 0
        async with aiohttp.ClientSession() as http:  # a client that stays is answered
            assert len((await call(http, server, "ml_predict", [model, [[0.5]] * 4]))["result"]["outputs"]) == 4


async def test_predictions_run_on_the_read_threads_and_answer_bit_for_bit(predictions) -> None:
    async with node_with_big_model() as (service, server, model), aiohttp.ClientSession() as http:
        rows = rows_of(16)  # MAX_PREDICT_OUTPUTS: 16 rows of 1,024 classes
        result = (await call(http, server, "ml_predict", [model, rows]))["result"]
        assert predictions and all(name.startswith("rpc-read") for name in predictions), predictions
        state = ReadOnlyState(service.chain, None)
        weights = np.frombuffer(models.WEIGHTS.get(state, model, 0), "<f4").astype(np.float32)
        expected = ml_runtime.predict(SPEC, weights, np.array(rows, dtype=np.float32))
        got = np.array(result["outputs"], dtype=np.float64).astype(np.float32)
        assert got.tobytes() == expected.tobytes()
        assert result["outputs"] == expected.tolist()
        assert result["classes"] == [int(c) for c in np.argmax(expected, axis=1)]
