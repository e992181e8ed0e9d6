"""The local spool: append-only JSON-lines segments that make the pipeline lossless.

Every item the pipeline accepts is appended here (by the spooler thread, or by the caller
itself when the in-memory queue is full) before the store sees it, and a segment is
deleted only once everything in it is committed to the store. ``os.write`` puts the
bytes in the OS page cache, which survives the process being killed (``kill -9``); with
``fsync_interval`` set they are also forced to disk (survives power loss).

Layout of ``spool_dir`` (one directory per database)::

    <owner>.lock              flock'ed by the owning process for its whole life
    <owner>-000001.jsonl      main journal segments, in order
    <owner>-ovf-000001.jsonl  overflow segments written by callers when the queue was full
    stats-<owner>.json        the owner's counters, for ``llmtally status``

``<owner>`` is ``<pid>-<random>``. A process that finds a ``.lock`` it can take (its
owner died) replays that owner's segments into the store and deletes them; duplicates
are harmless because ``event_id`` makes every write idempotent.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from llmtally.pipeline.process import Identify

log = logging.getLogger("llmtally")

_SEGMENT = re.compile(r"^(?P<owner>\d+-[0-9a-f]+)-(?P<ovf>ovf-)?(?P<seq>\d{6})\.jsonl$")
Position = tuple[int, int]  # (segment sequence number, byte offset)


def _default(value: Any) -> Any:
    if isinstance(value, bytes):  # metadata arrives pre-serialized by validation
        return orjson.Fragment(value)
    raise TypeError(f"cannot journal {type(value).__name__}")


def encode(item: dict[str, Any] | Identify) -> bytes:
    """One journal line (with the trailing newline) for a queued item."""
    if isinstance(item, Identify):
        payload: Any = {"__identify__": [
            item.actor_type, item.actor_id, item.display_name, item.real_name,
            item.timezone, item.email, item.at,
        ]}  # fmt: skip
    else:
        payload = item
    return orjson.dumps(payload, default=_default, option=orjson.OPT_APPEND_NEWLINE)


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

    def __init__(self, directory: Path, *, segment_bytes: int = 8 << 20) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.segment_bytes = segment_bytes
        self._lock_fd = os.open(directory / f"{self.owner}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.seq = 1
        self.offset = 0
        self._fd = self._open(self.seq)
        self._lock = threading.Lock()  # the live segment's descriptor is swapped on release
        self._ovf_seq = 0
        self._ovf_fd: int | None = None

    def path(self, seq: int, *, overflow: bool = False) -> Path:
        """File of one segment."""
        middle = "ovf-" if overflow else ""
        return self.dir / f"{self.owner}-{middle}{seq:06d}.jsonl"

    def _open(self, seq: int) -> int:
        return os.open(self.path(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    # -- main journal (spooler thread only) ------------------------------------------------

    def append(self, data: bytes | bytearray) -> tuple[Position, Position]:
        """Append encoded lines; return the start and end positions they occupy."""
        with self._lock:
            return self._append(data)

    def _append(self, data: bytes | bytearray) -> tuple[Position, Position]:
        if self.offset and self.offset + len(data) > self.segment_bytes:
            os.close(self._fd)
            self.seq += 1
            self.offset = 0
            self._fd = self._open(self.seq)
        start = (self.seq, self.offset)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.offset += len(data)
        return start, (self.seq, self.offset)

    def sync(self) -> None:
        """Force the current segment to disk (power-loss durability)."""
        with self._lock:
            os.fsync(self._fd)

    def end(self) -> Position:
        """Position just after the last appended byte."""
        return (self.seq, self.offset)

    # -- overflow (callers, under the writer's overflow lock) -------------------------------

    def append_overflow(self, data: bytes) -> None:
        """Append to the current overflow segment (opened on first use)."""
        if self._ovf_fd is None:
            self._ovf_seq += 1
            self._ovf_fd = os.open(
                self.path(self._ovf_seq, overflow=True),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                0o600,
            )
        os.write(self._ovf_fd, data)

    def seal_overflow(self) -> Path | None:
        """Close the current overflow segment so it can be replayed; None if there is none."""
        if self._ovf_fd is None:
            return None
        os.close(self._ovf_fd)
        self._ovf_fd = None
        return self.path(self._ovf_seq, overflow=True)

    # -- reading and cleanup (store-writer thread) ------------------------------------------

    def read_range(self, start: Position, end: Position) -> list[Any]:
        """The items appended between ``start`` and ``end`` (one batch, one segment)."""
        with open(self.path(start[0]), "rb") as fh:
            fh.seek(start[1])
            data = fh.read(end[1] - start[1])
        items = [_safe_decode(line) for line in data.splitlines()]
        return [item for item in items if item is not None]

    def release_before(self, position: Position) -> None:
        """Delete main segments wholly before ``position`` (everything in them is committed)."""
        for seq in range(max(1, position[0] - 64), position[0]):
            with contextlib.suppress(FileNotFoundError):
                self.path(seq).unlink()

    def release_all(self) -> None:
        """Everything journaled is committed: delete old segments and restart the live one."""
        self.release_before((self.seq, 0))
        with self._lock:
            if not self.offset:
                return
            os.close(self._fd)
            self.path(self.seq).unlink(missing_ok=True)
            self.seq += 1
            self.offset = 0
            self._fd = self._open(self.seq)

    def close(self, *, remove_empty: bool = True) -> None:
        """Close files; drop the lock file and the live segment when nothing is pending."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if self._ovf_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._ovf_fd)
            self._ovf_fd = None
        if remove_empty and self.offset == 0:
            self.path(self.seq).unlink(missing_ok=True)
        pending = list(self.dir.glob(f"{self.owner}-*.jsonl"))
        if not pending:
            (self.dir / f"{self.owner}.lock").unlink(missing_ok=True)
            (self.dir / f"stats-{self.owner}.json").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's descriptors without unlocking them."""
        for fd in (self._fd, self._lock_fd, self._ovf_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


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
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # the owner is alive and will write its own segments
            yield owner, sorted(paths, key=lambda p: p.name)
            remaining = [p for p in paths if p.exists()]
            if not remaining:
                lock_path.unlink(missing_ok=True)
                (directory / f"stats-{owner}.json").unlink(missing_ok=True)
        finally:
            os.close(fd)


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
            owners_alive[owner] = _is_alive(directory / f"{owner}.lock")
        if match and not owners_alive[owner]:
            orphaned.append(path)
        elif not match and owners_alive[owner]:
            with contextlib.suppress(OSError, ValueError):
                live.append({"owner": owner, **orjson.loads(path.read_bytes())})
    return live, orphaned


def _is_alive(lock_path: Path) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True  # its owner holds the lock: the process is running
    finally:
        os.close(fd)
    return False
