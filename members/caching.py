"""Per-process caches of the few settings rows that hot paths read on every request.

``ProcessCache`` holds one value; ``KeyedProcessCache`` one per key (the API keys of the stores).

    ladder = ProcessCache(_load_ladder, watch=(Tier, TierRule))
    ladder.get()     # loaded at most once per TTL in this process
    ladder.clear()   # dropped now; done for you when a watched model is saved or deleted here

An operator's change reaches the process that made it at once (the signals of the watched models)
and every other process (web workers, Celery workers) within the TTL. The TTL is the cache's own
``ttl`` or ``settings.HUIYUAN_SETTINGS_CACHE_SECONDS`` (10 by default); 0 turns caching off, which
is what the test settings do, so that tests may change rows with ``QuerySet.update``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

T = TypeVar("T")
DEFAULT_TTL = 10.0


class KeyedProcessCache(Generic[T]):
    """One value per key (at most ``max_entries``; all dropped when full). ``None`` is not kept:
    a key that finds nothing asks again next time."""

    _keeps_none = False

    def __init__(
        self,
        load: Callable[[str], T | None],
        *,
        watch: Iterable[type] = (),
        ttl: float | None = None,
        max_entries: int = 1000,
    ):
        self._load = load
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, T]] = {}
        self._generation = 0
        for model in watch:
            post_save.connect(self._on_change, sender=model, weak=False)
            post_delete.connect(self._on_change, sender=model, weak=False)

    @property
    def ttl(self) -> float:
        if self._ttl is not None:
            return self._ttl
        return float(getattr(settings, "HUIYUAN_SETTINGS_CACHE_SECONDS", DEFAULT_TTL))

    def get(self, key: str) -> T | None:
        ttl, now, entry = self.ttl, time.monotonic(), self._entries.get(key)
        if ttl > 0 and entry is not None and now - entry[0] <= ttl:
            return entry[1]
        # No lock: two threads loading at once is harmless, and loading may save a watched row
        # (``get_or_create``), whose signal clears the cache — that value is then not kept.
        generation = self._generation
        value = self._load(key)
        if ttl > 0 and (value is not None or self._keeps_none) and generation == self._generation:
            if len(self._entries) >= self._max_entries:
                self._entries = {}
            self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        self._generation += 1
        self._entries = {}

    def _on_change(self, **_kwargs) -> None:
        # Now, and again when the saving transaction commits: a thread that reloads in between
        # would otherwise keep the row as it was before the commit.
        self.clear()
        transaction.on_commit(self.clear)


class ProcessCache(KeyedProcessCache[T]):
    """One value (whatever it is, ``None`` included)."""

    _keeps_none = True

    def __init__(self, load: Callable[[], T], *, watch: Iterable[type] = (), ttl: float | None = None):
        super().__init__(lambda _key: load(), watch=watch, ttl=ttl, max_entries=1)

    def get(self) -> T:
        return super().get("")
