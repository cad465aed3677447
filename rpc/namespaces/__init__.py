"""The node's JSON-RPC methods, one module per namespace (Substrate's ``system_``,
``chain_``, ``state_``, ``author_``, ``payment_`` and polchain's ``ml_``).

Each module's ``build(node)`` returns a `MethodTable` bound to a running node;
`rpc.api.build_method_table` merges them. Every parameter is declared with a kind from
`rpc.params` and parsed before a method body runs, so bad input is -32602 with a reason
and never reaches the chain.
"""
