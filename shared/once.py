"""Process-wide objects (settings, SDK clients, the notifier) built once, however many threads ask at once.

``functools.lru_cache`` does not hold other callers back while it builds: the first queue batch of a fresh
instance starts up to batchSize + newBatchThreshold invocations on as many worker threads at once, and with
it each of them built its own notifier (its own SDK clients, connection pools, table checks and remembered
rows), all but one of which were then dropped. :func:`process_wide` makes the others wait for the first.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable

# One lock for every builder: builders call each other (the notifier builds table clients, which read the
# settings), and a re-entrant lock lets the thread that builds go through while the others wait.
_BUILDING = threading.RLock()


def process_wide[**P, T](build: Callable[P, T]) -> Callable[P, T]:
    """Cache ``build``'s result per arguments for the life of the process; concurrent first calls build once.

    A call that raises caches nothing (the next call builds again), as with ``lru_cache``.
    """
    built: dict[Hashable, T] = {}

    @functools.wraps(build)
    def get(*args: P.args, **kwargs: P.kwargs) -> T:
        key = (args, tuple(sorted(kwargs.items())))
        try:
            return built[key]
        except KeyError:
            pass
        with _BUILDING:
            if key not in built:
                built[key] = build(*args, **kwargs)
            return built[key]

    return get
