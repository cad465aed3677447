"""MethodTable registration, params binding and the error tree."""

from __future__ import annotations

from typing import Any

import pytest

from rpc import errors
from rpc.errors import InvalidParams, RpcCallError, RpcError
from rpc.methods import MethodTable, Params, Subscription, bind_params, parse_params


async def noop(params: Params) -> Any:
    return None


async def noop_sub(params: Params, sink: Subscription) -> None:
    return None


def test_registration_rules():
    table = MethodTable()
    table.register("a_b", noop)
    table.register_subscription("a_sub", "a_note", "a_unsub", noop_sub)
    assert "a_b" in table and "a_sub" in table and "a_unsub" in table
    assert "a_note" not in table
    assert len(table) == 3
    assert table.names() == ["a_b", "a_sub", "a_unsub"]
    with pytest.raises(ValueError, match="already registered"):
        table.register("a_b", noop)
    with pytest.raises(ValueError, match="already registered"):
        table.register_subscription("x_sub", "x_note", "a_b", noop_sub)
    with pytest.raises(ValueError, match="reserved"):
        table.register("rpc.discover", noop)
    with pytest.raises(ValueError):
        table.register("", noop)
    other = MethodTable()
    other.register("c_d", noop, unsafe=True)
    table.merge(other)
    spec = table.get_method("c_d")
    assert spec is not None and spec.unsafe


def test_parse_params_positional_and_named():
    assert parse_params([1], ["a", "b"], required=1) == [1, None]
    assert parse_params({"b": 2, "a": 1}, ["a", "b"]) == [1, 2]
    assert parse_params({}, ["a"], required=0) == [None]
    with pytest.raises(InvalidParams, match="at most 1"):
        parse_params([1, 2], ["a"])
    with pytest.raises(InvalidParams, match="missing required param 0 'a'"):
        parse_params([], ["a"])
    with pytest.raises(InvalidParams, match="missing required param 1 'b'"):
        parse_params({"a": 1}, ["a", "b"])
    with pytest.raises(InvalidParams, match="unknown param 'c'"):
        parse_params({"c": 1}, ["a", "b"], required=0)


async def test_bind_params():
    @bind_params
    async def f(
        hash: str, count: int = 10, flag: bool | None = None, opts: dict[str, Any] | None = None
    ) -> Any:
        return hash, count, flag, opts

    assert await f(["0x1"]) == ("0x1", 10, None, None)
    assert await f(["0x1", 3, True]) == ("0x1", 3, True, None)
    assert await f({"hash": "0x1", "opts": {"a": 1}}) == ("0x1", 10, None, {"a": 1})
    assert await f(["0x1", 3, None]) == ("0x1", 3, None, None)
    cases = [
        ([], "missing required param 0 'hash'"),
        ([1], "param 0 'hash' must be a string, got integer"),
        (["0x1", True], "param 1 'count' must be an integer, got boolean"),
        (["0x1", 1.5], "param 1 'count' must be an integer, got number"),
        (["0x1", 1, "yes"], "param 2 'flag' must be a boolean or null, got string"),
        (["0x1", 1, None, [1]], "param 3 'opts' must be an object or null, got array"),
        (["0x1", 1, None, None, 5], "at most 4"),
        ({"hash": "0x1", "cnt": 1}, "unknown param 'cnt'"),
        ({"count": 1}, "missing required param 0 'hash'"),
    ]
    for params, message in cases:
        with pytest.raises(InvalidParams) as info:
            await f(params)
        assert message in info.value.message, (params, info.value.message)
        assert info.value.code == -32602


def test_bind_params_refuses_unbindable_signatures():
    async def star(*args: Any) -> None:
        return None

    with pytest.raises(TypeError):
        bind_params(star)


def test_error_codes():
    expected = {
        errors.ParseError: -32700,
        errors.InvalidRequest: -32600,
        errors.MethodNotFound: -32601,
        errors.UnsafeRpcCalled: -32601,
        errors.SubscriptionsUnsupported: -32601,
        errors.InvalidParams: -32602,
        errors.InternalError: -32603,
        errors.CallFailed: -32000,
        errors.TooManySubscriptions: -32006,
        errors.OversizedRequest: -32007,
        errors.OversizedResponse: -32008,
        errors.ServerBusy: -32009,
        errors.BatchTooLarge: -32010,
    }
    for cls, code in expected.items():
        err = cls()
        assert isinstance(err, RpcError)
        assert err.to_wire() == {"code": code, "message": cls.default_message}


def test_author_error_codes_match_substrate():
    expected = {
        errors.BadFormat: 1001,
        errors.VerificationError: 1002,
        errors.InvalidTransaction: 1010,
        errors.UnknownTransactionValidity: 1011,
        errors.TemporarilyBanned: 1012,
        errors.AlreadyImported: 1013,
        errors.TooLowPriority: 1014,
        errors.CycleDetected: 1015,
        errors.ImmediatelyDropped: 1016,
        errors.UnsupportedKeyType: 1017,
        errors.Unactionable: 1018,
        errors.NoTagsProvided: 1019,
        errors.InvalidBlockId: 1020,
        errors.FutureTransactionRejected: 1021,
    }
    for cls, code in expected.items():
        err = cls("because")
        assert isinstance(err, errors.AuthorError)
        assert err.to_wire() == {"code": code, "message": cls.default_message, "data": "because"}


def test_rpc_call_error_from_wire():
    err = RpcCallError.from_wire({"code": 1010, "message": "Invalid Transaction", "data": "x"})
    assert (err.code, err.message, err.data) == (1010, "Invalid Transaction", "x")
    assert RpcCallError.from_wire("junk").code == -32603


def test_a_premature_and_a_stale_extrinsic_are_both_1010_with_their_own_reason():
    """Substrate answers InvalidTransaction::Future and ::Stale both with 1010 (Invalid
    Transaction); the reason in ``data`` tells them apart (chain.runtime's era check)."""
    from chain.errors import FutureTransaction
    from chain.errors import InvalidTransaction as ChainInvalid
    from rpc.namespaces.author import pool_error

    future = pool_error(FutureTransaction("era 1000+10 starts at block 1000, after block 8")).to_wire()
    assert future == {"code": 1010, "message": "Invalid Transaction", "data": "future: era 1000+10 starts at block 1000, after block 8"}
    stale = pool_error(ChainInvalid("stale", "era 0+8 does not cover block 8")).to_wire()
    assert stale == {"code": 1010, "message": "Invalid Transaction", "data": "stale: era 0+8 does not cover block 8"}


def test_an_overdraft_is_1016_with_its_reason():
    """A sender's balance that cannot pay an extrinsic after its pooled lower nonces
    (chain.pool, tester16's P1) is a pool refusal, not a ban: 1016 (Immediately Dropped, as
    go-ethereum's txpool refuses ``ErrOverdraft``), ``data`` starting with ``overdraft``."""
    from chain.errors import PoolError
    from rpc.namespaces.author import pool_error

    refused = pool_error(PoolError("overdraft", "the sender's free balance 5 cannot pay")).to_wire()
    assert refused == {"code": 1016, "message": "Immediately Dropped", "data": "overdraft: the sender's free balance 5 cannot pay"}
