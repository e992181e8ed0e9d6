"""Fork at any moment after ``Tally()`` (the gunicorn --preload / uWSGI pattern), on SQLite
and PostgreSQL: with and without a prior record, during the writer's start-up, while it
writes — every child's events are stored and no child hangs."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

import llmtally
from dbutil import count

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

CHILDREN, PER_CHILD, TRIALS = 4, 200, 6


def _child(tally: llmtally.Tally, label: str) -> None:
    code = 0
    try:
        for i in range(PER_CHILD):
            tally.record_call(model="gpt-4o", feature=label, input_tokens=i)
        code = 0 if tally.flush(30) else 3
    except BaseException:
        code = 4
    os._exit(code)


def _reap(pids: list[int], timeout: float) -> dict[int, int]:
    """Exit codes of the children; a child still running after ``timeout`` is killed (-9)."""
    codes: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(codes) < len(pids) and time.monotonic() < deadline:
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    for pid in pids:
        if pid not in codes:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            codes[pid] = -9
    return codes


def test_fork_at_random_moments_after_creating_a_tally(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    expected: dict[str, int] = {}
    for trial in range(TRIALS):
        tally = llmtally.Tally(db_url, spool_dir=tmp_path / "spool", project="fork")
        if trial % 2:  # threads running: the fork lands in their start-up or in a write
            tally.record_call(model="gpt-4o", feature=f"parent-{trial}")
            expected[f"parent-{trial}"] = 1
        time.sleep(rng.uniform(0, 0.3))
        pids = []
        for child in range(CHILDREN):
            label = f"child-{trial}-{child}"
            expected[label] = PER_CHILD
            pid = os.fork()
            if pid == 0:
                _child(tally, label)
            pids.append(pid)
            time.sleep(rng.uniform(0, 0.02))
        codes = _reap(pids, timeout=60)
        assert sorted(codes.values()) == [0] * CHILDREN, f"trial {trial}: exit codes {codes}"
        assert tally.close(30)
    for label, n in expected.items():
        assert count(db_url, "feature = :f", f=label) == n, label


def test_a_parent_that_never_records_forks_without_threads(sqlite_url: str) -> None:
    import threading

    before = threading.active_count()
    tally = llmtally.Tally(sqlite_url, project="preload")
    assert threading.active_count() == before  # threads start with the first event
    pid = os.fork()
    if pid == 0:
        _child(tally, "worker")
    assert _reap([pid], timeout=60) == {pid: 0}
    assert tally.close(5)
    assert count(sqlite_url, "feature = 'worker'") == PER_CHILD
