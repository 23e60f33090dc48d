"""Development tools: the real programs started as local processes on loopback.

``processes`` starts an origin (``tursodb --sync-server``, ``sqld``), POPs, the gateway and
Redis the same way for ``edge-pop demo`` (``demo``), the test suite and the benchmarks.
Nothing on a POP's request path imports this package.
"""
