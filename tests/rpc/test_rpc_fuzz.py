"""Property: no body, however malformed, makes the server raise or answer off-spec."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_fixtures import make_table

from rpc.server import RpcServer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
methods = st.sampled_from(
    [
        "system_health",
        "test_echo",
        "test_add",
        "test_fail",
        "nope",
        "chain_subscribeNewHeads",
        "chain_unsubscribeNewHeads",
        "rpc_methods",
    ]
)
requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0", 2])},
    optional={
        "id": st.none() | st.integers() | st.text(max_size=5) | st.booleans(),
        "method": methods | json_values,
        "params": json_values,
    },
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | requests.map(lambda r: json.dumps(r).encode())
    | st.lists(requests | json_values, max_size=5).map(lambda b: json.dumps(b).encode())
)


def check_response(obj: Any) -> None:
    assert isinstance(obj, dict)
    assert obj["jsonrpc"] == "2.0"
    assert "id" in obj
    assert ("result" in obj) != ("error" in obj)
    if "error" in obj:
        assert isinstance(obj["error"]["code"], int)
        assert isinstance(obj["error"]["message"], str)


SERVER = RpcServer(make_table(), port=0)
SERVER._dispatch = SERVER._build_dispatch()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
async def test_any_body_gets_a_spec_answer(body: bytes) -> None:
    out = await SERVER._handle_payload(body, None)
    if out is None:
        return  # only notifications
    answer = json.loads(out)
    if isinstance(answer, list):
        assert answer
        for item in answer:
            check_response(item)
    else:
        check_response(answer)
