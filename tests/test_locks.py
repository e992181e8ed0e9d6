"""Portable file locks: llmtally imports, records and keeps its journal exclusive without fcntl.

Each test runs real interpreters with ``sys.modules["fcntl"] = None`` (what a platform
without fcntl looks like to ``import fcntl``), so filelock falls back to its soft lock.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

NO_FCNTL = "import sys\nsys.modules['fcntl'] = None  # as on a platform without fcntl\n"


def run(script: str, *, timeout: float = 60) -> str:
    """Run ``script`` in a fresh interpreter without fcntl; its stdout (fails on errors)."""
    proc = subprocess.run(
        [sys.executable, "-c", NO_FCNTL + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def events(db: Path) -> int:
    """Rows in the events table of a SQLite database."""
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def test_without_fcntl_a_tally_records_into_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    out = run(f"""
        import llmtally
        with llmtally.Tally("sqlite:///{db}", spool_dir={str(tmp_path / "spool")!r}) as t:
            for i in range(25):
                t.record_call(model="gpt-4o", provider="openai", input_tokens=i, output_tokens=1)
            assert t.flush(30)
        import filelock
        print(sys.modules["fcntl"], filelock.FileLock.__name__)
    """)
    assert out.split() == ["None", "SoftFileLock"]  # really without fcntl
    assert events(db) == 25
    assert not list((tmp_path / "spool").glob("*.lock"))  # the lock went with the journal


def test_without_fcntl_a_live_journal_excludes_other_processes(tmp_path: Path) -> None:
    """A's journaled events are not replayed by B while A lives, and are once A is killed."""
    db, spool = tmp_path / "t.db", tmp_path / "spool"
    # A: its store never answers (nothing listens on port 1), so its events go to the journal
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            NO_FCNTL
            + textwrap.dedent(f"""
            import time, llmtally
            t = llmtally.Tally("postgresql://postgres@127.0.0.1:1/none", spool_dir={str(spool)!r},
                               connect_timeout=1, max_backoff=0.5)
            for i in range(40):
                t.record_call(model="gpt-4o", provider="openai", input_tokens=i, output_tokens=1)
            deadline = time.monotonic() + 30
            while t.stats()["pending_in_journal"] < 40 and time.monotonic() < deadline:
                time.sleep(0.05)
            print("journaled", flush=True)
            time.sleep(120)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "journaled"
        segments = list(spool.glob("*.jsonl"))
        assert segments
        # B, on a store that works: it replays orphans at start, but A's journal is locked
        out = run(f"""
            import llmtally
            from pathlib import Path
            from llmtally.pipeline.journal import orphans, spool_status
            with llmtally.Tally("sqlite:///{db}", spool_dir={str(spool)!r}) as t:
                t.record_call(model="gpt-4o", provider="openai", input_tokens=1, output_tokens=1)
                assert t.flush(30)
            _, orphaned = spool_status(Path({str(spool)!r}))
            print(len(list(orphans(Path({str(spool)!r})))), len(orphaned))
        """)
        assert out.split() == ["0", "0"]  # A is alive: nothing of it is an orphan
        assert events(db) == 1
        assert all(path.exists() for path in segments)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    # A died without closing: its soft lock names a dead pid, so B may take A's journal
    run(f"""
        import llmtally
        with llmtally.Tally("sqlite:///{db}", spool_dir={str(spool)!r}) as t:
            assert t.flush(30)
    """)
    assert events(db) == 41
    assert not list(spool.glob("*.jsonl"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_never_holds_its_parents_journal_lock(tmp_path: Path) -> None:
    from llmtally._locks import is_held
    from llmtally.pipeline.journal import Journal

    journal = Journal(tmp_path)
    lock_file = tmp_path / f"{journal.owner}.lock"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        journal.forget_after_fork()
        held_fds = [
            fd for fd in os.listdir("/proc/self/fd") if _points_to(f"/proc/self/fd/{fd}", lock_file)
        ]
        os.write(write, b"clean" if not held_fds else b"inherited")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 20)
    os.waitpid(pid, 0)
    os.close(read)
    if sys.platform.startswith("linux"):
        assert answer == b"clean"
    assert is_held(lock_file)  # the child's exit did not free the parent's lock
    journal.close()
    assert not is_held(lock_file)


def _points_to(link: str, target: Path) -> bool:
    try:
        return os.readlink(link) == str(target)
    except OSError:
        return False


def test_the_sqlite_migration_lock_waits_for_another_process(tmp_path: Path) -> None:
    """While another process holds the migration lock, a start waits instead of migrating."""
    db = tmp_path / "m.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            NO_FCNTL
            + textwrap.dedent(f"""
            import time
            from llmtally._locks import file_lock
            with file_lock({str(db) + ".migrate-lock"!r}, mode=0o644):
                print("locked", flush=True)
                time.sleep(1.5)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    out = run(f"""
        import time
        from llmtally.store.base import open_store
        store = open_store("sqlite:///{db}")
        store.migrate()
        print(store.migrate() == [])
    """)
    waited = time.monotonic() - started
    holder.wait(10)
    assert out.strip() == "True"
    assert waited > 0.8  # it waited for the holder's lock (held 1.5 s from before the start)
