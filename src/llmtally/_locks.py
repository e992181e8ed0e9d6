"""Inter-process file locks that work on every platform, through ``filelock``.

``fcntl`` exists on POSIX only; llmtally must import and record events where it does
not (Windows, some sandboxes). ``filelock.FileLock`` is ``flock`` where ``fcntl`` is
available, ``LockFileEx`` on Windows, and otherwise a soft lock: a marker file holding
the owner's pid, host and start time, which another process may break once that pid
is gone. Either way a lock is released when its owner dies (the OS drops a native
lock; a soft lock's dead owner is detected), which is what the journal's ownership
and the SQLite migration lock rely on.

``filelock`` is imported on first use: ``import llmtally`` never pays for it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import BaseFileLock


def _filelock_module() -> ModuleType:
    with warnings.catch_warnings():
        # without fcntl filelock warns once that only its soft lock is available; that
        # is expected here and documented above, not something to show every user
        warnings.simplefilter("ignore", UserWarning)
        import filelock
    return filelock


def file_lock(path: Path | str, *, mode: int = 0o600) -> BaseFileLock:
    """A lock on ``path`` shared by all threads of this process (not yet acquired)."""
    # thread_local=False: a journal takes its lock on one thread and may drop it on another
    lock: BaseFileLock = _filelock_module().FileLock(path, mode=mode, thread_local=False)
    return lock


def try_lock(path: Path | str, *, mode: int = 0o600) -> BaseFileLock | None:
    """Take the lock on ``path`` if it is free; None if another holder has it."""
    module = _filelock_module()
    lock = file_lock(path, mode=mode)
    try:
        lock.acquire(blocking=False)
    except module.Timeout:
        return None
    return lock


def is_held(path: Path | str) -> bool:
    """Whether some process (this one included) holds the lock on ``path`` right now."""
    if not Path(path).exists():
        return False  # neither a native nor a soft lock can be held without its file
    lock = try_lock(path)
    if lock is None:
        return True
    lock.release()
    return False
