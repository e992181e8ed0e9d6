"""The background writer: a bounded in-memory queue drained by one daemon thread.

The caller pays for a ``SimpleQueue.put`` (tens of nanoseconds) and nothing else. The
writer thread opens and migrates the store (so a slow or dead database never delays
the application's start), then loops: collect up to ``batch_size`` items or whatever
arrived within ``flush_interval``, process them into rows, write them in one
transaction. A failed write is retried with capped exponential backoff and jitter; the
first failure of an outage is logged once, the recovery once.

``flush(timeout)`` and ``close(timeout)`` never wait longer than asked; a bounded flush
also runs at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmtally.pipeline.process import Identify, Processor
from llmtally.store.base import Batch, Store

log = logging.getLogger("llmtally")


class _Marker:
    """A flush request: set once everything queued before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


@dataclass(slots=True)
class Counters:
    """Self-observability counters (read with ``Tally.stats()``)."""

    queued: int = 0
    written: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped: int = 0
    retries: int = 0
    batches: int = 0
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict view."""
        return {
            "queued": self.queued,
            "written": self.written,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "dropped": self.dropped,
            "retries": self.retries,
            "batches": self.batches,
            "last_error": self.last_error,
        }


class Writer:
    """Owns the queue and the writer thread for one ``Tally``."""

    def __init__(
        self,
        *,
        open_store: Callable[[], Store],
        make_processor: Callable[[Store], Processor],
        queue_size: int,
        batch_size: int,
        flush_interval: float,
        exit_timeout: float,
        max_backoff: float = 30.0,
        on_ready: Callable[[Store], None] | None = None,
    ) -> None:
        self._open_store = open_store
        self._make_processor = make_processor
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_backoff = max_backoff
        self._on_ready = on_ready
        self.counters = Counters()
        self.ready = threading.Event()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._store: Store | None = None
        self._warned_full = False
        ref = weakref.ref(self)

        def _exit_flush() -> None:
            writer = ref()
            if writer is not None:
                writer.close(timeout=exit_timeout)

        self._atexit = _exit_flush
        atexit.register(_exit_flush)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    # -- caller side -------------------------------------------------------------------

    def put(self, item: dict[str, Any] | Identify) -> None:
        """Hand an item to the writer (never blocks, never raises)."""
        q = self._queue
        if q.qsize() >= self._queue_size:
            self._full(item)
            return
        q.put(item)
        self.counters.queued += 1
        if self._thread is None:
            self._start()

    def _full(self, item: Any) -> None:
        self.counters.dropped += 1
        if not self._warned_full:
            self._warned_full = True
            log.warning(
                "llmtally: event queue full (%d items); the store is not keeping up",
                self._queue_size,
            )

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name="llmtally-writer", daemon=True)
            thread.start()
            self._thread = thread

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; False if ``timeout`` ran out."""
        if self._thread is None:
            return self._queue.empty()
        marker = _Marker()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (bounded by ``timeout``) and stop the thread; idempotent."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        atexit.unregister(self._atexit)
        thread = self._thread
        if thread is None:
            return True
        deadline = time.monotonic() + timeout
        self._queue.put(_STOP)
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning(
                "llmtally: %d events not yet written after %.1fs at close",
                self._queue.qsize(),
                timeout,
            )
            return False
        return True

    def _after_fork_in_child(self) -> None:
        # the writer thread does not exist in a forked child; start a fresh one lazily
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread = None
        self._store = None
        self.ready = threading.Event()
        self.counters = Counters()

    # -- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        store, processor = self._connect()
        q = self._queue
        while True:
            items, markers, stop = self._collect(q)
            if items:
                batch = processor.batch(items)
                self._write(store, processor, batch)
            for marker in markers:
                marker.done.set()
            if stop:
                break
        store.close()

    def _collect(self, q: queue.SimpleQueue[Any]) -> tuple[list[Any], list[_Marker], bool]:
        items: list[Any] = []
        markers: list[_Marker] = []
        deadline = time.monotonic() + self._flush_interval
        timeout: float | None = None  # block until the first item
        while len(items) < self._batch_size:
            try:
                item = q.get(timeout=timeout) if timeout != 0 else q.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Marker):
                markers.append(item)
                break  # write what came before the marker now
            if item is _STOP:
                return items, markers, True
            items.append(item)
            timeout = max(0.0, deadline - time.monotonic())
        return items, markers, False

    def _connect(self) -> tuple[Store, Processor]:
        delay = 0.1
        warned = False
        while True:
            try:
                store = self._open_store()
                store.ping()
                store.migrate()
                processor = self._make_processor(store)
            except Exception as exc:
                self.counters.last_error = f"{type(exc).__name__}: {exc}"
                if not warned:
                    warned = True
                    log.warning(
                        "llmtally: store unavailable (%s); events stay queued and writes are "
                        "retried in the background",
                        self.counters.last_error,
                    )
                delay = self._sleep(delay)
                continue
            if warned:
                log.warning("llmtally: store reachable again")
            self._store = store
            if self._on_ready is not None:
                self._on_ready(store)
            self.ready.set()
            return store, processor

    def _write(self, store: Store, processor: Processor, batch: Batch) -> None:
        delay = 0.05
        warned = False
        while True:
            try:
                result = store.write(batch)
            except Exception as exc:
                self.counters.retries += 1
                self.counters.last_error = f"{type(exc).__name__}: {exc}"
                if not warned:
                    warned = True
                    log.warning(
                        "llmtally: write failed (%s); retrying with backoff",
                        self.counters.last_error,
                    )
                delay = self._sleep(delay)
                continue
            if warned:
                log.warning("llmtally: writes recovered")
            c = self.counters
            c.batches += 1
            c.written += result.inserted
            c.duplicates += result.duplicates
            for row, reason in result.rejected:
                c.rejected += 1
                log.warning("llmtally: event %s rejected by the store: %s", row[0], reason)
            return

    def _sleep(self, delay: float) -> float:
        time.sleep(delay * (0.5 + random.random()))
        return min(delay * 2, self._max_backoff)
