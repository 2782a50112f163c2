"""One object per key in a process, pickled as its key.

Ray pickles a sweep's scheduler, searcher and callbacks into the experiment and
unpickles them on restore, each apart from the others and from the driver's own
objects. What several of them share (a ledger of early stops, a budget's count) pickles
as its key, an experiment path: every copy unpickled in a process is then that
process's one object for the key.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

_Shared = TypeVar("_Shared", bound="SharedByKey")


class SharedByKey:
    """A mixin: `shared(key)` makes or finds the process's object for `key`; pickling
    any of them gives back that one object."""

    _shared: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._shared = {}  # each class its own: a budget and a ledger may share a key

    def __init__(self, key: str = "") -> None:
        self.key = key

    @classmethod
    def shared(cls: type[_Shared], key: str) -> _Shared:
        """The process's object for `key`, created on first use."""
        if key not in cls._shared:
            cls._shared[key] = cls(key)
        found: _Shared = cls._shared[key]
        return found

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (type(self).shared, (self.key,))
