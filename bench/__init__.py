"""Side-by-side benchmark of retryd against the Python peers (huey, dramatiq, arq, saq, rq).

Run it with `python -m bench` (see docs/benchmarks.md). It starts its own redis-server on a free
loopback port and never touches any other server; it installs nothing at run time.
"""
