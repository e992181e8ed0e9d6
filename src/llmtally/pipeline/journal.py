"""The local spool: append-only JSON-lines segments that make the pipeline lossless.

A batch that is not committed to the store within ``spool_interval`` is appended here
(by the spooler thread; callers append to an overflow segment themselves when the
in-memory queue is full). ``os.write`` puts the bytes in the OS page cache, which
survives the process being killed (``kill -9``); with ``fsync_interval`` set they are
also forced to disk (survives power loss).

A main segment is deleted only when every batch journaled in it is committed: each
segment counts the uncommitted batches it holds (``append`` adds one, ``release``
takes one away), so a batch that could not be journaled, or a failed write, can never
free a segment that still holds events. A write that fails half way is cut off and the
journal continues in a new segment, so a torn line can never merge with a later one.
The journal's own segments never exceed ``max_bytes`` together: an append that would
raises ``SpoolFull`` and the caller counts what it could not keep.

Layout of ``spool_dir`` (one directory per database)::

    <owner>.lock              locked by the owning process for its whole life
    <owner>-000001.jsonl      main journal segments, in order
    <owner>-ovf-000001.jsonl  overflow segments written by callers when the queue was full
    stats-<owner>.json        the owner's counters, for ``llmtally status``
    dead-<owner>.jsonl        events the store refused, with the reason (``deadletter``)

``<owner>`` is ``<pid>-<random>``. A process that finds a ``.lock`` it can take (its
owner died) replays that owner's segments into the store and deletes them; duplicates
are harmless because ``event_id`` makes every write idempotent. The lock is
``llmtally._locks`` (``filelock``): ``flock`` on POSIX, ``LockFileEx`` on Windows, a
soft lock with the owner's pid where neither exists; each is freed when its owner dies.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from llmtally._locks import file_lock, is_held, try_lock
from llmtally.pipeline.process import Identify, clean_item, json_default

if TYPE_CHECKING:
    from filelock import BaseFileLock

log = logging.getLogger("llmtally")

_SEGMENT = re.compile(r"^(?P<owner>\d+-[0-9a-f]+)-(?P<ovf>ovf-)?(?P<seq>\d{6})\.jsonl$")
Position = tuple[int, int]  # (segment sequence number, byte offset)


class SpoolFull(OSError):
    """Appending would take this process's spool past ``spool_max_bytes``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(errno.ENOSPC, f"spool_max_bytes reached ({size:,} of {limit:,} bytes)")


def encode(item: dict[str, Any] | Identify) -> bytes:
    """One journal line (with the trailing newline) for a queued item.

    Lone surrogates (text from a bad decode) cannot be UTF-8: they are replaced by
    U+FFFD, the same normalization the writer applies before storing. Raises TypeError
    only for a value no event can hold.
    """
    if isinstance(item, Identify):
        payload: Any = {"__identify__": [
            item.actor_type, item.actor_id, item.display_name, item.real_name,
            item.timezone, item.email, item.at,
        ]}  # fmt: skip
    else:
        payload = item
    try:
        return orjson.dumps(payload, default=json_default, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        cleaned = clean_item(item)
        if cleaned is item:
            raise
        return encode(cleaned)


def decode(line: bytes) -> dict[str, Any] | Identify:
    """A queued item back from one journal line."""
    value = orjson.loads(line)
    ident = value.get("__identify__") if isinstance(value, dict) else None
    if ident is not None:
        return Identify(*ident)
    if not isinstance(value, dict):
        raise ValueError("journal line is not an object")
    return value


class Journal:
    """The journal of this process: main segments, overflow segments and the owner lock."""

    def __init__(
        self, directory: Path, *, segment_bytes: int = 8 << 20, max_bytes: int = 1 << 30
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        # the owner is new (pid + random), so the lock is free; blocking=False all the same
        self._owner_lock: BaseFileLock | None = file_lock(directory / f"{self.owner}.lock")
        self._owner_lock.acquire(blocking=False)
        # the main journal's state: the spooler appends, the writer releases; every step
        # under it is a syscall or two, never store work
        self._lock = threading.Lock()
        # the overflow's own lock: a caller appending overflow never waits for the
        # spooler's (larger) batch appends
        self._ovf_lock = threading.Lock()
        self.seq = 1
        self.offset = 0
        self._fd: int | None = None  # opened on the first append
        self._refs: dict[int, int] = {}  # segment -> uncommitted batches in it
        self._sizes: dict[int, int] = {}  # segment -> bytes, for every main segment on disk
        self._ovf_seq = 0
        self._ovf_fd: int | None = None
        self._ovf_size = 0
        self._sealed: dict[Path, int] = {}  # sealed overflow files awaiting replay -> bytes
        self._main_bytes = 0  # under _lock
        self._ovf_bytes = 0  # under _ovf_lock

    def path(self, seq: int, *, overflow: bool = False) -> Path:
        """File of one segment."""
        middle = "ovf-" if overflow else ""
        return self.dir / f"{self.owner}-{middle}{seq:06d}.jsonl"

    @property
    def disk_bytes(self) -> int:
        """Everything this process has on disk in the spool (main and overflow segments)."""
        return self._main_bytes + self._ovf_bytes

    @property
    def segments(self) -> int:
        """Files of this process in the spool (main and overflow)."""
        with self._lock, self._ovf_lock:
            return len(self._sizes) + len(self._sealed) + (self._ovf_fd is not None)

    def _room(self, size: int) -> None:
        total = self._main_bytes + self._ovf_bytes + size
        if total > self.max_bytes:
            raise SpoolFull(total, self.max_bytes)

    # -- main journal (spooler thread) ------------------------------------------------------

    def append(self, data: bytes | bytearray) -> tuple[Position, Position]:
        """Append one batch's lines; return its start and end. Raises OSError (or SpoolFull).

        The batch counts as uncommitted in its segment until ``release``.
        """
        with self._lock:
            self._room(len(data))
            if self.offset and self.offset + len(data) > self.segment_bytes:
                self._rotate()
            if self._fd is None:
                self._fd = os.open(
                    self.path(self.seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
                )
                self._sizes.setdefault(self.seq, 0)
            start = (self.seq, self.offset)
            try:
                _write_all(self._fd, data)
            except OSError:
                # a torn tail: cut it off, and go on in a new segment so that nothing
                # appended later can ever follow a partial line
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self.offset)
                self._rotate()
                raise
            self.offset += len(data)
            self._sizes[self.seq] = self.offset
            self._main_bytes += len(data)
            self._refs[self.seq] = self._refs.get(self.seq, 0) + 1
            return start, (self.seq, self.offset)

    def _rotate(self) -> None:
        """Close the live segment (deleting it if nothing in it is pending); start the next."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        old = self.seq
        self.seq += 1
        self.offset = 0
        self._drop_if_done(old)

    def _drop_if_done(self, seq: int) -> None:
        if self._refs.get(seq, 0) or seq == self.seq:
            return
        self._refs.pop(seq, None)
        size = self._sizes.pop(seq, None)
        if size is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path(seq).unlink()
        self._main_bytes -= size

    def release(self, seq: int) -> None:
        """One batch journaled in segment ``seq`` is committed; delete what nothing needs."""
        with self._lock:
            left = self._refs.get(seq, 0) - 1
            self._refs[seq] = max(0, left)
            if left > 0:
                return
            if seq == self.seq:
                if self.offset:  # the live segment holds only committed batches: restart it
                    self._rotate()
            else:
                self._drop_if_done(seq)

    def pending_segments(self) -> int:
        """Main segments still holding uncommitted batches."""
        with self._lock:
            return sum(1 for refs in self._refs.values() if refs)

    def sync(self) -> None:
        """Force the current segment to disk (power-loss durability)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)

    # -- overflow (callers, when the queue is full) -----------------------------------------

    def append_overflow(self, data: bytes) -> None:
        """Append to the current overflow segment (opened on first use). Raises OSError."""
        with self._ovf_lock:
            self._room(len(data))
            if self._ovf_fd is None:
                self._ovf_seq += 1
                self._ovf_fd = os.open(
                    self.path(self._ovf_seq, overflow=True),
                    os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                    0o600,
                )
                self._ovf_size = 0
            try:
                _write_all(self._ovf_fd, data)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._ovf_fd, self._ovf_size)
                self._seal_overflow()  # the next line starts a new file
                raise
            self._ovf_size += len(data)
            self._ovf_bytes += len(data)

    def seal_overflow(self) -> Path | None:
        """Close the current overflow segment so it can be replayed; None if there is none."""
        with self._ovf_lock:
            return self._seal_overflow()

    def _seal_overflow(self) -> Path | None:
        if self._ovf_fd is None:
            return None
        with contextlib.suppress(OSError):
            os.close(self._ovf_fd)
        self._ovf_fd = None
        path = self.path(self._ovf_seq, overflow=True)
        self._sealed[path] = self._ovf_size
        return path

    def remove_sealed(self, path: Path) -> None:
        """A sealed overflow segment is replayed: delete it."""
        path.unlink(missing_ok=True)  # outside the lock: callers may be waiting to append
        with self._ovf_lock:
            self._ovf_bytes -= self._sealed.pop(path, 0)

    def sealed(self) -> list[Path]:
        """Sealed overflow segments not replayed yet, oldest first."""
        with self._ovf_lock:
            return sorted(self._sealed, key=lambda p: p.name)

    # -- reading and cleanup -----------------------------------------------------------------

    def read_range(self, start: Position, end: Position) -> tuple[list[Any], int]:
        """The items of one journaled batch, and how many of its lines could not be read."""
        with open(self.path(start[0]), "rb") as fh:
            fh.seek(start[1])
            data = fh.read(end[1] - start[1])
        lines = data.splitlines()
        items = [item for item in map(_safe_decode, lines) if item is not None]
        return items, len(lines) - len(items)

    def close(self) -> None:
        """Close files; drop the lock file when nothing of this process is left on disk."""
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None
                if not self._refs.get(self.seq):
                    self.path(self.seq).unlink(missing_ok=True)
        with self._ovf_lock:
            self._seal_overflow()
        pending = list(self.dir.glob(f"{self.owner}-*.jsonl"))
        # released first: a soft lock's release removes its own marker file
        if self._owner_lock is not None:
            with contextlib.suppress(OSError):
                self._owner_lock.release()
            self._owner_lock = None
        if not pending:
            (self.dir / f"{self.owner}.lock").unlink(missing_ok=True)
            (self.dir / f"stats-{self.owner}.json").unlink(missing_ok=True)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's descriptors without unlocking them."""
        for fd in (self._fd, self._ovf_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        # filelock closes the child's copy of the lock's descriptor at fork and leaves the
        # parent's lock held; the child only forgets the object (never releases it)
        self._owner_lock = None


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _safe_decode(line: bytes) -> Any:
    try:
        return decode(line)
    except (ValueError, TypeError) as exc:
        log.warning("llmtally: skipping an unreadable spool line: %s", exc)
        return None


def read_file(path: Path) -> Iterator[Any]:
    """Every complete item in a closed segment file (torn or unreadable lines skipped)."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.endswith(b"\n"):
                item = _safe_decode(line)
                if item is not None:
                    yield item


def orphans(directory: Path, own_owner: str | None = None) -> Iterator[tuple[str, list[Path]]]:
    """Segments of owners that are gone (their lock is free), oldest first, with the owner."""
    if not directory.is_dir():
        return
    by_owner: dict[str, list[Path]] = {}
    for path in directory.iterdir():
        match = _SEGMENT.match(path.name)
        if match and match["owner"] != own_owner:
            by_owner.setdefault(match["owner"], []).append(path)
    for owner, paths in by_owner.items():
        lock_path = directory / f"{owner}.lock"
        lock = try_lock(lock_path)
        if lock is None:
            continue  # the owner is alive and will write its own segments
        try:
            yield owner, sorted(paths, key=lambda p: p.name)
            remaining = [p for p in paths if p.exists()]
        finally:
            lock.release()
        if not remaining:
            lock_path.unlink(missing_ok=True)
            (directory / f"stats-{owner}.json").unlink(missing_ok=True)


def spool_status(directory: Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """Counters of live processes spooling in ``directory``; segments awaiting recovery."""
    live: list[dict[str, Any]] = []
    orphaned: list[Path] = []
    if not directory.is_dir():
        return live, orphaned
    owners_alive: dict[str, bool] = {}
    for path in sorted(directory.iterdir()):
        match = _SEGMENT.match(path.name)
        owner = match["owner"] if match else None
        if path.name.startswith("stats-") and path.suffix == ".json":
            owner = path.name[len("stats-") : -len(".json")]
        if owner is None:
            continue
        if owner not in owners_alive:
            owners_alive[owner] = is_held(directory / f"{owner}.lock")
        if match and not owners_alive[owner]:
            orphaned.append(path)
        elif not match and owners_alive[owner]:
            with contextlib.suppress(OSError, ValueError):
                live.append({"owner": owner, **orjson.loads(path.read_bytes())})
    return live, orphaned
