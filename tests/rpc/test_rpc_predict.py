"""``ml_predict`` under load, on a real node behind a real RpcServer: an answer that would
pass the response cap is refused with -32008 before anything is computed; predictions run on
the RPC read threads, off the event loop; the answers are those of the float32 forward pass on
the parsed rows, bit for bit. (How responsive ``system_health`` stays while several run is a
figure, not a test: timed assertions failed under the suite's load.)

The model is the tester's: softmax d=255 k=1024 (262,144 parameters), registered by an
extrinsic in an instantly sealed block on a dev chain in LevelDB.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
import pytest

import ml_runtime
from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from chain.pallets import models
from genesis.spec import load_chain_spec
from node.service import NodeConfig, NodeService
from rpc.api import build_method_table
from rpc.namespaces import ml as ml_namespace
from rpc.reads import ReadOnlyState
from rpc.server import RpcServer

SPEC = ml_runtime.ModelSpec("softmax", 255, 1024)


@asynccontextmanager
async def node_with_big_model() -> AsyncIterator[tuple[NodeService, RpcServer, int]]:
    service = NodeService(NodeConfig(chain="dev", tmp=True, author="//Alice", instant_seal=True), load_chain_spec("dev"))
    try:
        chain = service.chain
        register = calls.RegisterModel("big", SPEC.encode(), b"\x07" * 32)
        xt = sign_extrinsic(dev_keypair("Eve"), register, nonce=0, genesis_hash=chain.genesis_hash,
                            spec_version=chain.runtime.spec_version)
        service.submit(xt.encode())
        assert await service.author_block() is not None
        model = models.NEXT_MODEL_ID.get(ReadOnlyState(chain, None)) - 1
        assert ml_runtime.ModelSpec.decode(models.MODELS.get(ReadOnlyState(chain, None), model).spec) == SPEC
        async with RpcServer(build_method_table(service), port=0) as server:
            yield service, server, model
    finally:
        service.close()


async def call(http: aiohttp.ClientSession, server: RpcServer, method: str, params: Any) -> dict[str, Any]:
    async with http.post(server.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as resp:
        return await resp.json()


def rows_of(n: int, seed: int = 3) -> list[list[float]]:
    return np.random.default_rng(seed).standard_normal((n, SPEC.d)).astype(np.float32).astype(np.float64).tolist()


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
    async with node_with_big_model() as (_service, server, model), aiohttp.ClientSession() as http:
        answer = await call(http, server, "ml_predict", [model, rows_of(1024)])
        assert answer["error"]["code"] == -32008, answer
        assert "ask for at most" in answer["error"]["data"]
        assert predictions == []  # nothing computed
        most = ml_namespace.max_predict_rows(SPEC.k, server.max_response_size)
        fits = await call(http, server, "ml_predict", [model, rows_of(most)])
        assert len(fits["result"]["outputs"]) == most and len(predictions) == 1


async def test_predictions_run_on_the_read_threads_and_answer_bit_for_bit(predictions) -> None:
    async with node_with_big_model() as (service, server, model), aiohttp.ClientSession() as http:
        rows = rows_of(64)
        result = (await call(http, server, "ml_predict", [model, rows]))["result"]
        assert predictions and all(name.startswith("rpc-read") for name in predictions), predictions
        state = ReadOnlyState(service.chain, None)
        weights = np.frombuffer(models.WEIGHTS.get(state, model, 0), "<f4").astype(np.float32)
        expected = ml_runtime.predict(SPEC, weights, np.array(rows, dtype=np.float32))
        got = np.array(result["outputs"], dtype=np.float64).astype(np.float32)
        assert got.tobytes() == expected.tobytes()
        assert result["outputs"] == expected.tolist()
        assert result["classes"] == [int(c) for c in np.argmax(expected, axis=1)]
