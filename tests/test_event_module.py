"""``llmtally.event``: the event definition, importable without capture or SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys

import llmtally.capture.event as capture_event
import llmtally.capture.ids as capture_ids
from llmtally import event


def test_event_module_loads_neither_capture_nor_sqlalchemy() -> None:
    # a fresh interpreter: this test process has loaded everything already
    code = (
        "import llmtally.event, sys\n"
        "bad = sorted(m for m in sys.modules if m.startswith('llmtally.capture')"
        " or m == 'sqlalchemy' or m.startswith('sqlalchemy.'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "", f"import llmtally.event loaded: {done.stdout.strip()}"


def test_capture_reexports_are_the_definition() -> None:
    # old import paths keep working and name the very same objects
    assert capture_event.FIELDS is event.FIELDS
    assert capture_event.COLUMN_NAMES is event.COLUMN_NAMES
    assert capture_event.SCHEMA_VERSION == event.SCHEMA_VERSION
    assert capture_ids.new_event_id is event.new_event_id
    assert set(capture_event.VALIDATORS) == set(event.FIELDS)


def test_columns_follow_fields_in_order() -> None:
    assert tuple(event.FIELDS) == event.COLUMN_NAMES
    assert event.COLUMN_NAMES[:2] == ("event_id", "occurred_at")
    assert set(event.TOKEN_FIELDS) <= set(event.FIELDS)
    ids = [event.new_event_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(event.is_uuid(i) for i in ids)
    stamps = [i[:13] for i in ids]  # the 48-bit millisecond prefix
    assert stamps == sorted(stamps)
