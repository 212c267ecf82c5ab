"""pgevents benchmark: latency and throughput of the whole pipeline beside a raw LISTEN floor.

Run ``python -m bench --help``; the scenarios, the figures and how to read them are in
``docs/benchmarks.md``. Everything it starts listens on 127.0.0.1 only and stops by itself.
"""
