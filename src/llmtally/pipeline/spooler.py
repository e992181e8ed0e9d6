"""The spooler thread: the caller queue becomes batches, journaled when not committed in time.

``Spooler`` holds the spooler thread's half of ``Writer`` (see ``pipeline.writer`` for the
whole pipeline): it drains the queue into ``PendingBatch``es handed to the store writer in
memory, appends to the journal the batches that are not committed within
``spool_interval``, and keeps memory bounded: journaled batches beyond
``MEMORY_BATCHES`` are read back from disk later, and when the journal cannot take a
batch at all, at most ``MAX_UNSPOOLED`` of them wait in memory before the oldest is
dropped and counted.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmtally.pipeline import journal as jr
from llmtally.pipeline.deadletter import DeadLetters

log = logging.getLogger("llmtally")

STOP = object()
MEMORY_BATCHES = 4  # journaled batches kept in memory beyond the one being written
MAX_UNSPOOLED = 16  # batches kept in memory while the journal cannot take them
JOURNAL_RETRY = 1.0  # seconds between journal attempts after a failed one


class PendingBatch:
    """Items handed from the spooler to the writer; journaled when not committed in time."""

    __slots__ = (
        "committed", "created", "dropped", "end", "items", "journaling", "seq", "size", "start",
        "taken",
    )  # fmt: skip

    def __init__(self, seq: int, items: list[Any], created: float) -> None:
        self.seq = seq
        self.items: list[Any] | None = items
        self.size = len(items)
        self.created = created
        self.start: jr.Position | None = None
        self.end: jr.Position | None = None
        self.journaling = False
        self.taken = False  # the writer is committing it from memory
        self.committed = False
        self.dropped = False  # neither journaled nor kept: counted in ``dropped``


class FlushMarker:
    """A flush request: done once everything queued before it is committed."""

    __slots__ = ("done", "target")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.target: int | None = None  # the last batch sequence number it waits for


@dataclass(slots=True)
class Counters:
    """Self-observability counters (``Tally.stats()``, ``llmtally status``)."""

    queued: int = 0  # items taken off the caller queue by the spooler
    overflowed: int = 0  # items the caller journaled itself because the queue was full
    written: int = 0  # events inserted into the store
    duplicates: int = 0  # events the store already had (replays, retries, resends)
    spooled: int = 0  # events read back from the journal instead of memory (backlog)
    replayed: int = 0  # items recovered from dead processes' journals and overflow
    rejected: int = 0  # events refused (by the store, or unbuildable) and kept as dead letters
    dead_letters: int = 0  # refused events kept in this process's dead-letter file
    dropped: int = 0  # events lost: the spool was full or unwritable while the store was down
    retries: int = 0  # failed store writes that were retried
    circuit_opens: int = 0
    batches: int = 0
    sampled_out: int = 0  # events not kept because of sample_rate
    invalid: int = 0  # events refused by validation with on_invalid="warn"


class Spooler:
    """The spooler thread's work and the state it shares with the store writer."""

    counters: Counters
    journal_error: str | None
    _queue: queue.SimpleQueue[Any]
    _cond: threading.Condition
    _batches: collections.deque[PendingBatch]  # uncommitted, in order
    _unjournaled: collections.deque[PendingBatch]
    _journaled_in_memory: collections.deque[PendingBatch]
    _in_memory: int  # batches whose items are held in memory
    _next_seq: int
    _stopping: bool
    _markers: list[FlushMarker]
    _journal_retry_at: float
    _journal: jr.Journal
    _dead: DeadLetters
    _batch_size: int
    _spool_interval: float
    _fsync_interval: float | None
    _spool_dir: Path

    def _journal_failed(self, exc: OSError) -> None:
        first = self.journal_error is None
        self.journal_error = f"{type(exc).__name__}: {exc}"
        self._journal_retry_at = time.monotonic() + JOURNAL_RETRY
        if first:
            log.error(
                "llmtally: cannot write the spool in %s (%s); while the store is also behind, "
                "events beyond %d batches in memory are dropped and counted",
                self._spool_dir,
                self.journal_error,
                MAX_UNSPOOLED,
            )

    def _reject(self, refused: list[tuple[Any, str]]) -> None:
        """Keep refused events as dead letters (or count them dropped if even that fails)."""
        c = self.counters
        for item, reason in refused:
            c.rejected += 1
            if self._dead.add(item, reason):
                c.dead_letters += 1
            else:
                c.dropped += 1
        if refused:
            log.warning(
                "llmtally: %d event(s) refused and kept in %s; first: %s",
                len(refused),
                self._dead.path,
                refused[0][1],
            )

    def _spool_loop(self) -> None:
        while True:
            try:
                self._spool_until_stopped()
                return
            except Exception:  # a bug must not end the pipeline
                log.exception("llmtally: spooler error; continuing")
                time.sleep(0.1)

    def _spool_until_stopped(self) -> None:
        q = self._queue
        last_sync = time.monotonic()
        while True:
            items, markers, stop = self._collect(q)
            now = time.monotonic()
            if items:
                self.counters.queued += len(items)
                # rows are built by the writer when it takes the batch: in a backlog most
                # batches are spilled to the journal, and rows built here would be thrown away
                # (measured: 97% in a 200k burst), costing the callers GIL time for nothing
                batch = PendingBatch(self._next_seq, items, now)
                with self._cond:
                    self._batches.append(batch)
                    self._unjournaled.append(batch)
                    self._in_memory += 1
                    self._next_seq += 1
                    self._cond.notify()
            wrote = self._journal_due(now, force=stop)
            if (
                wrote
                and self._fsync_interval is not None
                and (stop or now - last_sync >= self._fsync_interval)
            ):
                with contextlib.suppress(OSError):
                    self._journal.sync()
                last_sync = now
            if markers or stop:
                with self._cond:
                    for marker in markers:
                        marker.target = self._next_seq - 1
                        self._markers.append(marker)
                    self._stopping = stop
                    self._cond.notify()
            if stop:
                return

    def _collect(self, q: queue.SimpleQueue[Any]) -> tuple[list[Any], list[FlushMarker], bool]:
        items: list[Any] = []
        markers: list[FlushMarker] = []
        try:
            # wake regularly even when idle: pending batches may have come due for the journal
            item = q.get(timeout=self._spool_interval / 4)
        except queue.Empty:
            return items, markers, False
        deadline = time.monotonic() + self._spool_interval / 4
        while True:
            if isinstance(item, FlushMarker):
                markers.append(item)
                break  # hand over what came before the marker now
            if item is STOP:
                return items, markers, True
            items.append(item)
            if len(items) >= self._batch_size:
                break
            remaining = deadline - time.monotonic()
            try:
                item = q.get(timeout=remaining) if remaining > 0 else q.get_nowait()
            except queue.Empty:
                break
        return items, markers, False

    def _journal_due(self, now: float, *, force: bool = False) -> bool:
        """Journal batches not committed within ``spool_interval`` (all of them when forced).

        Also drops the in-memory copy of journaled batches beyond ``MEMORY_BATCHES``, so
        a slow or dead store costs disk, not memory. Returns whether anything was written.
        Work is proportional to what is due: both queues are consumed from the left.
        """
        if not force and now < self._journal_retry_at:
            with self._cond:
                self._bound_memory()
            return False
        due: list[PendingBatch] = []
        with self._cond:
            waiting = self._unjournaled
            while waiting:
                b = waiting[0]
                if b.committed or b.dropped:
                    waiting.popleft()
                    continue
                if not (
                    force
                    or self._in_memory > MEMORY_BATCHES
                    or now - b.created >= self._spool_interval
                ):
                    break  # younger batches are not due either
                waiting.popleft()
                b.journaling = True
                due.append(b)
                if not force and len(due) + MEMORY_BATCHES >= self._in_memory:
                    break
        failed: list[PendingBatch] = []
        wrote = False
        for b in due:
            data = self._encode(b)
            position: tuple[jr.Position, jr.Position] | None = None
            if data and not failed:  # after one failure, keep the order: retry all later
                try:
                    position = self._journal.append(data)
                except OSError as exc:
                    self._journal_failed(exc)
                else:
                    self.journal_error = None
                    wrote = True
            with self._cond:
                b.journaling = False
                if position is not None:
                    b.start, b.end = position
                    if b.committed:  # written while it was being journaled
                        self._journal.release(b.start[0])
                    else:
                        self._journaled_in_memory.append(b)
                elif data and not b.committed:
                    failed.append(b)
        with self._cond:
            self._unjournaled.extendleft(reversed(failed))
            self._bound_memory()
        return wrote

    def _bound_memory(self) -> None:
        """Under ``_cond``: drop in-memory copies of journaled batches, then unjournalable ones.

        A journaled batch is read back from disk by the writer later; a batch the journal
        could not take is dropped and counted only beyond ``MAX_UNSPOOLED`` of them.
        """
        spill = self._journaled_in_memory
        while spill and self._in_memory > MEMORY_BATCHES:
            b = spill.popleft()
            if b.committed or b.taken or b.items is None:
                continue
            b.items = None  # the writer reads it back from the journal
            self._in_memory -= 1
            self.counters.spooled += b.size
        waiting = self._unjournaled
        while self._in_memory > MEMORY_BATCHES + MAX_UNSPOOLED and waiting:
            b = waiting.popleft()
            if b.committed or b.taken or b.items is None or b.dropped:
                continue
            b.items = None
            b.dropped = True
            self._in_memory -= 1
            self.counters.dropped += b.size
            log.error(
                "llmtally: %d events dropped: the store is behind and the spool cannot take "
                "them (%s)",
                b.size,
                self.journal_error,
            )

    def _encode(self, batch: PendingBatch) -> bytearray:
        # one compact buffer: orjson's results carry ~8 KB of slack each, freed at once here
        buf = bytearray()
        encode = jr.encode
        refused: list[tuple[Any, str]] = []
        for item in batch.items or ():
            try:
                buf += encode(item)
            except TypeError as exc:  # no event can hold this value: never stored, kept aside
                refused.append((item, f"cannot be serialized: {exc}"))
        if refused:
            gone = {id(item) for item, _ in refused}
            with self._cond:
                if not batch.committed and batch.items is not None:
                    batch.items = [item for item in batch.items if id(item) not in gone]
                    batch.size = len(batch.items)
            self._reject(refused)
        return buf
