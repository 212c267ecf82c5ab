"""The cyclic garbage collector, set for a process that holds thousands of connections.

Every connection is a few hundred long-lived objects (the server's protocol, the ASGI
application's task and queue, the consumer, its subscription). CPython's collector walks all
of them in each full collection, and with its default young threshold (700 allocations)
it runs so often that while 3,000 WebSockets opened on one daphne process it took about a
fifth of the process' time (3.1 s in full collections, timed with ``gc.callbacks``). Two
changes took that to 0.35 s:

- ``gc.freeze()`` once the process serves: what exists then (Django, the apps, the
  server) is permanent and is never walked again;
- a young threshold of ``YOUNG_THRESHOLD`` allocations: fewer young collections, and so far
  fewer of the older ones that each of them can trigger.

Reference counting still frees everything at once; only garbage in reference cycles waits a
little longer. Done once per process, when its pgevents runtime starts.
"""

from __future__ import annotations

import gc

#: Container allocations (minus deallocations) between young collections; CPython's is 700.
YOUNG_THRESHOLD = 10_000

_tuned = False


def tune() -> bool:
    """Freeze what exists and raise the young threshold, once; True the first time."""
    global _tuned
    if _tuned:
        return False
    _tuned = True
    gc.collect()  # what is garbage now must not become permanent
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
    return True
