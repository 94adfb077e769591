"""Keep Python's cyclic garbage collector off the router's long-lived state.

A full collection traverses every tracked object: with a large core that is a pause of a tenth of a second
that every command waits out, and it finds nothing, since the core makes almost no cyclic garbage (its objects
are freed by reference counting). `settle()` collects once and then freezes everything alive (`gc.freeze()`):
frozen objects are still freed by reference counting, only the cyclic collector no longer visits them, and
later collections traverse what was made since. The router settles when it starts to lead and after every
snapshot, so the state that accumulates while it runs is frozen too. The measurements: docs/benchmarks.md,
"Measurements behind design choices".

What it costs: a reference cycle among objects alive at a settle that becomes garbage later is never freed.
The core has none; in-flight RPCs at that moment may leave a few objects per settle.
"""

from __future__ import annotations

import gc


def settle() -> None:
    gc.collect()
    gc.freeze()
