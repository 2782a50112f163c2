"""Ray Tune's trainable looked up once per sweep, not five times per trial.

Ray Tune finds a trial's trainable by name in Ray's registry, whose entries live in the
cluster's key-value store: each lookup is one or two round trips to Ray's control
service, and the trainable is unpickled again each time. Ray Tune's controller looks it
up about five times per trial (to check the name, when a worker starts, when a kept
worker is handed to the next trial), one after another on the loop that starts and ends
every trial. At 1,500 null trials on 2 cores that was 7,500 requests and about 20 s of
the driver's loop (13 ms a trial, a quarter of its per-trial overhead).

`trainables_remembered()` answers those lookups from memory while a sweep runs. The
registry is written by the driver only (`tune.register_trainable`, before the sweep),
and any write through it drops what is remembered, so an answer from memory is the
answer the store would give.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

from ray.tune import registry

logger = logging.getLogger(__name__)

_PATCHED = ("contains", "get", "register", "unregister")


@contextlib.contextmanager
def trainables_remembered() -> Iterator[None]:
    """Within it, Ray's registry answers for trainables from memory (this process)."""
    store = getattr(registry, "_global_registry", None)
    category = getattr(registry, "TRAINABLE_CLASS", None)
    if store is None or category is None or not all(hasattr(store, n) for n in _PATCHED):
        logger.debug("Ray's registry changed: trainables are looked up in the store")
        yield
        return
    if any(name in vars(store) for name in _PATCHED):  # nested: the outer one remembers
        yield
        return
    remembered: dict[str, Any] = {}
    contains: Callable[[str, str], bool] = store.contains
    get: Callable[[str, str], Any] = store.get

    def remembered_contains(kind: str, key: str) -> bool:
        if kind == category and key in remembered:
            return True
        return contains(kind, key)

    def remembered_get(kind: str, key: str) -> Any:
        if kind != category:
            return get(kind, key)
        if key not in remembered:
            remembered[key] = get(kind, key)
        return remembered[key]

    def forgetting(write: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(write)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            remembered.clear()
            return write(*args, **kwargs)

        return wrapper

    # Instance attributes shadow the class's methods, and go again on the way out.
    store.contains = remembered_contains
    store.get = remembered_get
    store.register = forgetting(store.register)
    store.unregister = forgetting(store.unregister)
    try:
        yield
    finally:
        for name in _PATCHED:
            vars(store).pop(name, None)
