"""Keep Python's cyclic garbage collector off the router's long-lived state.

A full collection traverses every tracked object: with a 5,000-agent core that was 116 ms (measured on the
2-core machine, 152,000 tracked objects; 28 ms for the imported modules alone), a pause every command waits
out. The core makes almost no cyclic garbage (its objects are freed by reference counting: 97 objects were
collected over a 5,000-agent simulation), so traversing its state finds nothing. `settle()` collects once and
then freezes everything alive (`gc.freeze()`): frozen objects are still freed by reference counting, only the
cyclic collector no longer visits them, and later collections traverse what was made since (2.5 ms after
another 2,000 calls at 5,000 agents). The router settles when it starts to lead and after every snapshot, so
the state that accumulates while it runs is frozen too.

What it costs: a reference cycle among objects alive at a settle that becomes garbage later is never freed.
The core has none; in-flight RPCs at that moment may leave a few objects per settle.
"""

from __future__ import annotations

import gc


def settle() -> None:
    gc.collect()
    gc.freeze()
