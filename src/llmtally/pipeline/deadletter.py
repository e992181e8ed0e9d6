"""Dead letters: events the store refused, kept on disk with the reason instead of lost.

A batch the store refuses is split until the refusing rows are found; those rows (and
queued items that could not even be turned into rows) are appended here, one JSON line
each, and counted in ``stats()["dead_letters"]``. The next process never replays them,
so a poisoned event cannot stall the writer again. ``llmtally status`` counts them; each
line is ``{"at": …, "reason": …, "event": {…}}`` with the event's fields as given, so it
can be fixed and sent again (``tally.ingest``).

Files are ``dead-<owner>.jsonl`` in the spool directory and are kept until removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from llmtally.event import COLUMN_NAMES
from llmtally.pipeline.process import Identify

log = logging.getLogger("llmtally")

PATTERN = "dead-*.jsonl"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        with contextlib.suppress(ValueError):
            return orjson.Fragment(orjson.dumps(orjson.loads(value)))
        return value.decode("utf-8", "replace")
    return str(value)


def row_event(row: tuple[Any, ...]) -> dict[str, Any]:
    """A stored-form row back as event fields (metadata parsed, occurred_at as text)."""
    event = {
        name: value for name, value in zip(COLUMN_NAMES, row, strict=False) if value is not None
    }
    meta = event.get("metadata")
    if isinstance(meta, str):
        with contextlib.suppress(ValueError):
            event["metadata"] = orjson.loads(meta)
    return event


class DeadLetters:
    """This process's dead-letter file."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.path = directory / f"dead-{owner}.jsonl"
        self.count = 0

    def add(self, event: dict[str, Any] | Identify | tuple[Any, ...], reason: str) -> bool:
        """Keep one refused event with its reason; False if even that failed (disk trouble)."""
        if isinstance(event, tuple):
            event = row_event(event)
        elif isinstance(event, Identify):
            event = {"identify": [event.actor_type, event.actor_id, *event.names()]}
        line = {"at": time.time(), "reason": reason[:2000], "event": event}
        try:
            data = orjson.dumps(line, default=_plain, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # lone surrogates and the like: keep what can be kept
            data = orjson.dumps(
                {"at": line["at"], "reason": line["reason"], "event": repr(event)[:100_000]},
                option=orjson.OPT_APPEND_NEWLINE,
            )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("llmtally: cannot keep a refused event in %s: %s", self.path, exc)
            return False
        self.count += 1
        return True


def read(directory: Path) -> Iterator[dict[str, Any]]:
    """Every dead letter kept in ``directory`` (all processes), oldest file first."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(PATTERN)):
        with open(path, "rb") as fh:
            for line in fh:
                with contextlib.suppress(ValueError):
                    yield orjson.loads(line)


def count(directory: Path) -> int:
    """How many dead letters ``directory`` holds."""
    if not directory.is_dir():
        return 0
    total = 0
    for path in directory.glob(PATTERN):
        with contextlib.suppress(OSError), open(path, "rb") as fh:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return total
