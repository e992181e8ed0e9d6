"""The pipeline between the caller and the store: lossless, bounded, never blocking.

Three stages::

    caller ──put──▶ queue ──spooler thread──▶ batch ──in memory──▶ store-writer thread ──▶ store
                       │                        └─ journal (disk) when not committed within
                       └── full? the caller appends   spool_interval, or when the store is behind
                           to an overflow segment itself

* The caller pays for one ``SimpleQueue.put`` (no JSON, no SQL, no lock, no logging).
  The threads start with the first event (or ``flush``), so a process that forks
  workers before recording (gunicorn ``--preload``) forks with no llmtally thread.
* The spooler drains the queue at least every ``spool_interval`` seconds into batches
  and hands them to the store writer in memory; a batch not committed in time is
  appended to this process's journal. When the store writer is behind (slow or dead
  store) the in-memory copies of journaled batches are dropped and read back later:
  memory stays bounded by ``queue_size`` plus a few batches, whatever the outage length.
* When the journal cannot take a batch (disk full, ``spool_max_bytes`` reached, an I/O
  error) the batch stays in memory, up to ``MAX_UNSPOOLED`` batches; beyond that the
  oldest of them is dropped and counted in ``dropped``: memory is bounded even then, and
  nothing vanishes without a counter. ``stats()["journal_error"]`` says why.
* The store writer commits batches in order, retrying faults (connection lost, database
  locked) with capped exponential backoff and jitter; after ``circuit_threshold``
  consecutive failures the circuit opens (logged once) and the writer probes every
  ``max_backoff`` seconds. Rows the store refuses because of their data are isolated by
  the store and kept as dead letters (``pipeline.deadletter``) with the reason, so a
  poisoned event is never retried and never replayed first by the next process.
* On start the writer replays journals left by dead processes (``kill -9``, power loss
  with ``fsync_interval``): their lock is free. ``event_id`` makes replays exactly-once.

Durability: an item handed to the pipeline more than ``spool_interval`` (default 0.2 s,
plus scheduling delay) before the process is killed is in the journal and is recovered
by the next process that opens the same database with the same ``spool_dir``.

Fork: before ``os.fork()`` the forking thread waits (at most ``_FORK_WAIT`` seconds) for
the writer thread to finish the driver call or import it is in, so the child never
inherits a lock held by a thread that does not exist there; the child gets its
own queue, journal and (lazily started) threads.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import gc
import logging
import os
import queue
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import orjson

from llmtally.pipeline import journal as jr
from llmtally.pipeline.deadletter import DeadLetters
from llmtally.pipeline.process import Identify, Processor
from llmtally.pipeline.spooler import (
    STOP,
    Counters,
    FlushMarker,
    PendingBatch,
    Spooler,
)
from llmtally.store.base import Batch, Store

log = logging.getLogger("llmtally")

_STATS_EVERY = 2.0
_ORPHAN_SCAN_EVERY = 30.0
_FORK_WAIT = 2.0


_open_writers: weakref.WeakSet[Writer] = weakref.WeakSet()
_frozen = False


# the most events the writer puts in one transaction when several batches are waiting
MERGE_EVENTS: Final = 20_000


def _freeze_once() -> None:
    """``gc.freeze()`` once per process, when the first writer has loaded what it needs.

    Importing SQLAlchemy, the drivers and the price data leaves ~80,000 long-lived objects
    that every full collection of the application walks again: ~30 ms of pause in the
    caller's thread, whichever thread triggered it. Frozen, they are never walked; objects
    created afterwards are collected as usual. What is frozen is never freed by the cyclic
    collector (reference counting still frees it), so this is done once, and ``Tally(
    gc_freeze=False)`` turns it off.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


def _before_fork() -> None:
    for writer in list(_open_writers):
        writer._fork_prepare()


def _after_fork_in_parent() -> None:
    for writer in list(_open_writers):
        writer._fork_release()


def _after_fork_in_child() -> None:
    for writer in list(_open_writers):
        writer._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    # one hook for all writers: a per-writer hook would keep every writer alive forever
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


class Writer(Spooler):
    """Owns the queue, the journal and the two background threads of one ``Tally``."""

    def __init__(
        self,
        *,
        open_store: Callable[[], Store],
        make_processor: Callable[[Store], Processor],
        spool_dir: Path,
        queue_size: int,
        batch_size: int,
        spool_interval: float,
        flush_interval: float,
        exit_timeout: float,
        fsync_interval: float | None = None,
        max_backoff: float = 30.0,
        circuit_threshold: int = 5,
        spool_max_bytes: int = 1 << 30,
        on_ready: Callable[[Store], None] | None = None,
        gc_freeze: bool = True,
    ) -> None:
        self._open_store = open_store
        self._gc_freeze = gc_freeze
        self._make_processor = make_processor
        self._spool_dir = spool_dir
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._spool_interval = spool_interval
        self._flush_interval = flush_interval
        self._fsync_interval = fsync_interval
        self._max_backoff = max_backoff
        self._circuit_threshold = circuit_threshold
        self._spool_max_bytes = spool_max_bytes
        self._on_ready = on_ready
        self._exit_timeout = exit_timeout
        ref = weakref.ref(self)

        def _exit_flush() -> None:
            writer = ref()
            if writer is not None:
                writer.close(timeout=writer._exit_timeout)

        self._atexit = _exit_flush
        atexit.register(_exit_flush)
        self._setup()
        _open_writers.add(self)

    def _setup(self) -> None:
        self.counters = Counters()
        self.circuit_open = False
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._failing_since: float | None = None  # first failure of the current streak
        self._connecting_since: float | None = None
        self.journal_error: str | None = None
        self.ready = threading.Event()
        self._queue = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._batches: collections.deque[PendingBatch] = (
            collections.deque()
        )  # uncommitted, in order
        self._unjournaled: collections.deque[PendingBatch] = collections.deque()
        self._journaled_in_memory: collections.deque[PendingBatch] = collections.deque()
        self._in_memory = 0  # batches whose items are held in memory
        self._next_seq = 1
        self._committed_seq = 0
        self._stopping = False
        self._markers = []
        self._overflow_lock = threading.Lock()
        self._overflow_pending = False
        self._journal_retry_at = 0.0
        self._writing_since: float | None = None
        self._abandon = threading.Event()
        self._closed = False
        self._close_lock = threading.Lock()
        # held by the writer thread while it is inside a driver call or an import: the
        # before-fork hook waits for it so a child never inherits a lock taken there
        self._write_gate = threading.Lock()
        self._fork_held: list[threading.Lock] = []
        self._journal = jr.Journal(self._spool_dir, max_bytes=self._spool_max_bytes)
        self._dead = DeadLetters(self._spool_dir, self._journal.owner)
        self._processor: Processor | None = None  # set by the writer once the store is ready
        self._started = False
        self._start_lock = threading.Lock()
        self._spooler = threading.Thread(
            target=self._spool_loop, name="llmtally-spooler", daemon=True
        )
        self._writer = threading.Thread(
            target=self._write_loop, name="llmtally-writer", daemon=True
        )

    def _start(self) -> bool:
        """Start the background threads (once); False if threads cannot start any more."""
        with self._start_lock:
            if not self._started:
                try:
                    self._spooler.start()
                    self._writer.start()
                except RuntimeError:  # interpreter shutdown: the journal keeps what comes
                    return False
                self._started = True
        return True

    # -- caller side -------------------------------------------------------------------

    def put(self, item: dict[str, Any] | Identify) -> None:
        """Hand an item to the pipeline: a queue put, or a journal append when the queue is full."""
        if not self._started and not self._start():
            self._overflow(item)
            return
        q = self._queue
        if q.qsize() < self._queue_size:
            q.put(item)
            return
        self._overflow(item)

    def _overflow(self, item: dict[str, Any] | Identify) -> None:
        # Rare path (the spooler is behind): never wait for the store, never raise.
        try:
            line = jr.encode(item)
        except TypeError as exc:
            self._reject([(item, f"cannot be serialized: {exc}")])
            return
        try:
            with self._overflow_lock:
                self._journal.append_overflow(line)
                self._overflow_pending = True
                self.journal_error = None
        except OSError as exc:  # disk full or gone, or spool_max_bytes: never raise
            self._journal_failed(exc)
            if self._queue.qsize() < 2 * self._queue_size:
                self._queue.put(item)  # a little more memory rather than a loss
            else:
                self.counters.dropped += 1
            return
        self.counters.overflowed += 1

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything handed over so far is in the store; False on timeout.

        A timeout is logged with what is pending and why.
        """
        if self._closed:
            return not self._batches and not self._overflow_pending
        if not self._started and not self._start():
            return False
        marker = FlushMarker()
        self._queue.put(marker)
        if marker.done.wait(timeout):
            return True
        log.warning("llmtally: flush timed out after %.1fs: %s", timeout, self.pending_summary())
        return False

    def close(self, timeout: float = 5.0) -> bool:
        """Flush within ``timeout`` and stop; what is not committed stays in the journal."""
        with self._close_lock:
            if self._closed:
                return True
            self._closed = True
        atexit.unregister(self._atexit)
        _open_writers.discard(self)
        if not self._started:
            self._journal.close()
            return True
        deadline = time.monotonic() + timeout
        self._queue.put(STOP)
        self._spooler.join(max(0.0, deadline - time.monotonic()))
        self._writer.join(max(0.0, deadline - time.monotonic()))
        clean = not self._writer.is_alive()
        if not clean:
            summary = self.pending_summary()
            self._abandon.set()  # the journal keeps the rest for the next start
            self._writer.join(1.0)
            log.warning(
                "llmtally: close timed out after %.1fs: %s; the journal keeps them for the "
                "next start",
                timeout,
                summary,
            )
        if not self._spooler.is_alive() and not self._writer.is_alive():
            self._journal.close()
        return clean

    def stats(self) -> dict[str, Any]:
        """Counters plus the current state of the queue, backlog, journal and circuit."""
        data: dict[str, Any] = asdict(self.counters)
        with self._cond:
            pending = sum(b.size for b in self._batches if not b.dropped)
            in_memory = sum(b.size for b in self._batches if b.items is not None)
            journaled = sum(b.size for b in self._batches if b.start is not None)
        data.update(
            queue_depth=self._queue.qsize(),
            pending=pending,
            pending_in_memory=in_memory,
            pending_in_journal=journaled,
            journal_bytes=self._journal.disk_bytes,
            journal_segments=self._journal.segments,
            journal_error=self.journal_error,
            circuit_open=self.circuit_open,
            store_ready=self.ready.is_set(),
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            spool_dir=str(self._spool_dir),
        )
        return data

    def pending_summary(self) -> str:
        """What is still pending and why, in one sentence (for timeouts).

        It tells a store that is reachable but behind (how many events in how many batches
        are still to write, and whether a write is stuck on a lock) from one that is
        unreachable or refusing writes (since when, and the last error).
        """
        stats = self.stats()
        with self._cond:
            batches = sum(1 for b in self._batches if not b.dropped)
        queued = stats["queue_depth"]
        pending = stats["pending"] + queued
        where = f"{pending:,} events pending ({stats['pending_in_journal']:,} in the journal"
        if self._overflow_pending:
            where += ", plus events callers spooled while the queue was full"
        where += f" at {self._spool_dir})"
        now = time.monotonic()
        failing = self._failing_since
        if failing is not None and self.last_error is not None:
            since = _when(time.time() - (now - failing))
            if not self.ready.is_set():
                why = f"store unreachable since {since}: last error: {self.last_error}"
            else:
                why = (
                    f"store writes are failing since {since} (unreachable, or refusing "
                    f"writes): last error: {self.last_error}"
                )
        elif not self.ready.is_set():
            opening = self._connecting_since
            spent = f" for {now - opening:.1f}s" if opening is not None else ""
            why = (
                f"store reachable but not ready: still connecting and migrating{spent} (a "
                "database locked by another writer, or a long migration)"
            )
        else:
            todo = f"{pending:,} events in {batches:,} batch{'es' if batches != 1 else ''}"
            if queued:
                todo += f" (and {queued:,} events not yet batched)"
            why = f"store reachable but behind: {todo} still to write"
            if (started := self._writing_since) is not None and now - started > 1.0:
                why += (
                    f"; a store write has been in progress for {now - started:.1f}s (the "
                    "database is locked by another writer, or slow)"
                )
        return f"{where}: {why}"

    # -- fork ----------------------------------------------------------------------------

    def _fork_prepare(self) -> None:
        if not self._started:
            return
        if self._write_gate.acquire(timeout=_FORK_WAIT):
            self._fork_held.append(self._write_gate)

    def _fork_release(self) -> None:
        held, self._fork_held = self._fork_held, []
        for gate in held:
            gate.release()

    def _after_fork_in_child(self) -> None:
        # threads do not survive fork: a child gets its own queue, journal and threads
        self._journal.forget_after_fork()
        self._setup()

    # -- errors --------------------------------------------------------------------------

    def _store_failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_error_at = time.time()
        if self._failing_since is None:
            self._failing_since = time.monotonic()

    def _store_recovered(self) -> None:
        self.last_error = None
        self.last_error_at = None
        self._failing_since = None

    # -- store-writer thread -------------------------------------------------------------

    def _write_loop(self) -> None:
        while not self._abandon.is_set():
            try:
                self._write_until_stopped()
                return
            except Exception:  # never let a bug stop the writer for good
                log.exception("llmtally: writer error; restarting the writer loop")
                self._abandon.wait(1.0)

    def _write_until_stopped(self) -> None:
        connected = self._connect()
        if connected is None:
            return
        store, processor = connected
        if self._gc_freeze:
            with self._write_gate:
                processor.warm()
            _freeze_once()
        self._replay_orphans(store, processor)
        next_scan = time.monotonic() + _ORPHAN_SCAN_EVERY
        next_stats = time.monotonic()
        while not self._abandon.is_set():
            with self._cond:
                if not self._batches and not self._stopping:
                    self._cond.wait(self._flush_interval)
                run = self._take_run()
                stopping = self._stopping
            if run:
                items: list[Any] = []
                for batch, kept in run:
                    if batch.dropped:
                        continue
                    found = kept if kept is not None else self._read_back(batch)
                    items.extend(found or ())
                if items and not self._commit(store, self._prepare(processor, items)):
                    break
                for batch, _ in run:
                    self._retire(batch)
                continue
            # idle: nothing pending in memory or in the journal
            if self._overflow_pending:
                self._replay_overflow(store, processor)
            self._release_markers()
            now = time.monotonic()
            if now >= next_stats:
                self._write_stats()
                next_stats = now + _STATS_EVERY
            if now >= next_scan:
                self._replay_orphans(store, processor)
                next_scan = now + _ORPHAN_SCAN_EVERY
            if stopping:
                break
        self._write_stats()
        with self._write_gate:
            store.close()

    def _take_run(self) -> list[tuple[PendingBatch, list[Any] | None]]:
        """The oldest pending batches to write as one transaction, with their in-memory items.

        A store that is behind gets the backlog in transactions of up to ``MERGE_EVENTS``
        events: per event, a bigger transaction dirties fewer rollup pages and upserts
        fewer distinct rollup keys (a backfill spread over a month touches a new bucket
        with almost every event). Live traffic, one batch at a time, is unchanged. Called
        with ``_cond`` held.
        """
        run: list[tuple[PendingBatch, list[Any] | None]] = []
        size = 0
        for batch in self._batches:
            if run and size + batch.size > max(MERGE_EVENTS, self._batch_size):
                break
            batch.taken = True  # from now on the spooler neither spills nor drops it
            run.append((batch, batch.items))
            size += batch.size
        return run

    def _read_back(self, batch: PendingBatch) -> list[Any] | None:
        """A spilled batch's items from the journal; None (and counted) if they are gone."""
        assert batch.start is not None and batch.end is not None
        for attempt in range(3):
            try:
                items, unreadable = self._journal.read_range(batch.start, batch.end)
            except OSError as exc:
                error = exc
                self._abandon.wait(0.1 * (attempt + 1))
                continue
            if unreadable:
                self.counters.dropped += unreadable
                log.error("llmtally: %d spooled events could not be read back", unreadable)
            return items
        self.counters.dropped += batch.size
        log.error("llmtally: %d spooled events could not be read back: %s", batch.size, error)
        return None

    def _retire(self, batch: PendingBatch) -> None:
        """Mark the oldest batch committed and free the journal bytes nothing needs."""
        with self._cond:
            self._batches.popleft()
            batch.committed = True
            if batch.items is not None:
                self._in_memory -= 1
                batch.items = None
            self._committed_seq = batch.seq
            if batch.start is not None:
                self._journal.release(batch.start[0])
        if self._markers:
            self._release_markers()

    def _release_markers(self) -> None:
        if self._overflow_pending:
            return  # a flush covers what callers journaled themselves: replayed when idle
        with self._cond:
            waiting = []
            for marker in self._markers:
                if marker.target is not None and marker.target <= self._committed_seq:
                    marker.done.set()
                else:
                    waiting.append(marker)
            self._markers = waiting

    def _connect(self) -> tuple[Store, Processor] | None:
        delay = 0.1
        warned = False
        self._connecting_since = time.monotonic()
        while not self._abandon.is_set():
            try:
                with self._write_gate:  # imports, driver calls and migrations
                    store = self._open_store()
                    store.ping()
                    store.migrate()
                    processor = self._make_processor(store)
            except Exception as exc:
                self._store_failed(exc)
                if not warned:
                    warned = True
                    log.warning(
                        "llmtally: store unavailable (%s); events are spooled to %s and "
                        "written when it is back",
                        self.last_error,
                        self._spool_dir,
                    )
                delay = self._backoff(delay)
                continue
            if warned:
                log.warning("llmtally: store reachable again")
            self._store_recovered()
            self._processor = processor
            if self._on_ready is not None:
                with self._write_gate:
                    self._on_ready(store)
            self.ready.set()
            return store, processor
        return None

    def _prepare(self, processor: Processor, items: list[Any]) -> Batch:
        with self._write_gate:  # pricing may import or load data on first use
            batch = processor.batch(items)
        self._reject(processor.take_rejected())
        return batch

    def _commit(self, store: Store, batch: Batch) -> bool:
        """Write a batch, retrying faults until it is in the store; False if abandoned."""
        c = self.counters
        delay = 0.05
        failures = 0
        while True:
            self._writing_since = time.monotonic()
            try:
                with self._write_gate:
                    result = store.write(batch)
            except Exception as exc:
                failures += 1
                c.retries += 1
                self._store_failed(exc)
                if failures == 1:
                    log.warning("llmtally: store write failed (%s); retrying", self.last_error)
                if failures == self._circuit_threshold:
                    self.circuit_open = True
                    c.circuit_opens += 1
                    log.warning(
                        "llmtally: circuit open after %d failed writes; probing every %.0fs",
                        failures,
                        self._max_backoff,
                    )
                if self._abandon.is_set():
                    return False
                delay = self._backoff(
                    delay if failures < self._circuit_threshold else self._max_backoff
                )
                continue
            finally:
                self._writing_since = None
            if failures:
                log.warning("llmtally: store writes recovered after %d retries", failures)
                self._store_recovered()
            self.circuit_open = False
            c.batches += 1
            c.written += result.inserted
            c.duplicates += result.duplicates
            self._reject([(row, f"refused by the store: {why}") for row, why in result.rejected])
            return True

    def _backoff(self, delay: float) -> float:
        # full jitter keeps many processes from hammering a recovering store in step
        self._abandon.wait(delay * (0.5 + random.random() / 2))
        return min(delay * 2, self._max_backoff)

    def _replay_file(self, store: Store, processor: Processor, path: Path) -> bool:
        """Write every item of a closed segment; False if abandoned before the end."""
        for chunk in _chunks(jr.read_file(path), self._batch_size):
            if not self._commit(store, self._prepare(processor, chunk)):
                return False
            self.counters.replayed += len(chunk)
        return True

    def _replay_overflow(self, store: Store, processor: Processor) -> None:
        with self._overflow_lock:
            self._journal.seal_overflow()
            self._overflow_pending = False
        for path in self._journal.sealed():
            if not self._replay_file(store, processor, path):
                return
            self._journal.remove_sealed(path)

    def _replay_orphans(self, store: Store, processor: Processor) -> None:
        try:
            for owner, paths in jr.orphans(self._spool_dir, self._journal.owner):
                log.warning(
                    "llmtally: recovering %d spool file(s) of process %s", len(paths), owner
                )
                for path in paths:
                    if not self._replay_file(store, processor, path):
                        return
                    path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("llmtally: spool recovery failed: %s", exc)

    def _write_stats(self) -> None:
        path = self._spool_dir / f"stats-{self._journal.owner}.json"
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_bytes(orjson.dumps({"pid": os.getpid(), "at": time.time(), **self.stats()}))
            os.replace(tmp, path)


def _when(epoch: float) -> str:
    """A moment for messages: UTC time of day and how long ago."""
    ago = max(0.0, time.time() - epoch)
    return f"{time.strftime('%H:%M:%S', time.gmtime(epoch))} UTC ({ago:.1f}s ago)"


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
