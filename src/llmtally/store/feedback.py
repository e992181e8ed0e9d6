"""Feedback rolled up onto the call it rates, kept current by the write path.

``rollup_feedback_hourly`` / ``_daily`` hold, per hour (day) **of the call** and per the
call's (project, feature, model, provider, status), the feedback counts (events, up, down,
regenerated, edited) and the rated calls by signal combination ``rated_<k>`` with
``k = regenerated | edited << 1 | slow << 2`` (any feedback on the call said so; slow:
latency over ``SLOW_MS``). The quality score's weights then apply at query time.

When feedback arrives, its calls are looked up (one statement per batch); a call's
combination may change with later feedback, so its old combination is taken back and
the new one added. Feedback whose call is not stored yet waits in ``feedback_orphans``
and is rolled up when the call arrives.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from llmtally.store.derived import (
    POS,
    Dialect,
    Merge,
    Table,
    Window,
    clear_buckets,
    datetime_day,
    datetime_hour,
    utc,
)
from llmtally.store.schema import (
    FEEDBACK_DIMENSIONS,
    FEEDBACK_SUMS,
    events,
    feedback_orphans,
    rollup_feedback_daily,
    rollup_feedback_hourly,
)

SLOW_MS = 3000.0  # seed 003's "slow answer" threshold, fixed in the rollups

_ID, _KIND, _PARENT = POS["event_id"], POS["kind"], POS["parent_id"]
_KEYS = ("bucket", *FEEDBACK_DIMENSIONS)
_VALUES = tuple((name, Merge.SUM) for name in FEEDBACK_SUMS)
HOURLY = Table(rollup_feedback_hourly, _KEYS, _VALUES)
DAILY = Table(rollup_feedback_daily, _KEYS, _VALUES)
_N = len(FEEDBACK_SUMS)
_RATED = 5  # index of rated_0 in FEEDBACK_SUMS

Key = tuple[Any, ...]  # (bucket, project, feature, model, provider, status)
# a call as the rollups need it: (occurred_at, project, feature, model, provider, status, latency)
CallInfo = tuple[Any, ...]
Signal = tuple[Any, Any, Any]  # (rating, regenerated, edited) of one feedback event


def category(signals: Iterable[Signal], latency: float | None, slow_ms: float = SLOW_MS) -> int:
    """The rated-call combination of a call with these feedback signals."""
    regenerated = edited = False
    for _rating, regen, edit in signals:
        regenerated = regenerated or bool(regen)
        edited = edited or bool(edit)
    slow = latency is not None and latency > slow_ms
    return int(regenerated) | int(edited) << 1 | int(slow) << 2


def add_call(
    out: dict[Key, list[int]],
    call: CallInfo,
    new: Sequence[Signal],
    old: Sequence[Signal],
    hour: Any,
) -> None:
    """Add the deltas of one call's ``new`` feedback, given the ``old`` already rolled up."""
    if not new:
        return
    at, project, feature, model, provider, status, latency = call
    key = (hour(utc(at)), project or "", feature or "", model or "", provider or "", status or "")
    d = out.get(key)
    if d is None:
        d = out[key] = [0] * _N
    for rating, regen, edit in new:
        d[0] += 1
        d[1] += rating == "up"
        d[2] += rating == "down"
        d[3] += bool(regen)
        d[4] += bool(edit)
    if old:
        d[_RATED + category(old, latency)] -= 1
    d[_RATED + category([*old, *new], latency)] += 1


def _valid_ids(ids: Iterable[str]) -> list[str]:
    """Ids that can equal an event id (parent_id is free text; PostgreSQL ids are uuid)."""
    out = []
    for value in ids:
        try:
            uuid.UUID(value)
        except (ValueError, TypeError, AttributeError):
            continue
        out.append(value)
    return out


class Feedback:
    """Feedback rolled onto its call: looks the rated calls up, adopts waiting orphans."""

    name = "feedback"
    tables: tuple[sa.Table, ...] = (rollup_feedback_hourly, rollup_feedback_daily, feedback_orphans)
    reads: tuple[str, ...] = ("event_id", "kind", "parent_id")
    replay = False  # keyed by the call's time: a window's rows depend on later feedback

    def maintain(self, db: Any, dialect: Dialect, new_rows: Sequence[Sequence[Any]]) -> None:
        """Roll up the feedback among ``new_rows`` and any orphans whose call is among them.

        ``db``: a sqlite3 connection or a psycopg cursor, inside the write transaction.
        """
        fresh: dict[str, set[str]] = {}  # call id -> ids of its feedback events new here
        call_ids: list[str] = []
        for row in new_rows:
            kind = row[_KIND]
            if kind == "feedback" and row[_PARENT]:
                fresh.setdefault(row[_PARENT], set()).add(str(row[_ID]))
            elif kind == "llm_call":
                call_ids.append(str(row[_ID]))
        adopted: set[str] = set()  # calls whose earlier feedback waited for them
        if call_ids and db.execute("SELECT 1 FROM feedback_orphans LIMIT 1").fetchone():
            cond, params = dialect.any_of("call_id", call_ids)
            found = db.execute(f"SELECT call_id FROM feedback_orphans WHERE {cond}", params)
            adopted = {r[0] for r in found.fetchall()}
            if adopted:
                cond, params = dialect.any_of("call_id", sorted(adopted))
                db.execute(f"DELETE FROM feedback_orphans WHERE {cond}", params)
        wanted = _valid_ids(set(fresh) | adopted)
        if not fresh and not adopted:
            return
        calls: dict[str, CallInfo] = {}
        if wanted:
            cast = "::uuid[]" if dialect.pg else ""
            cond, params = dialect.any_of("event_id", wanted, cast)
            for r in db.execute(
                "SELECT event_id, occurred_at, project, feature, model, provider, status, "
                f"latency_ms FROM events WHERE kind = 'llm_call' AND {cond}",
                params,
            ).fetchall():
                calls[str(r[0])] = tuple(r[1:])
        missing = [cid for cid in fresh if cid not in calls]
        if missing:
            sql = "INSERT INTO feedback_orphans (call_id) VALUES ({}) ON CONFLICT DO NOTHING"
            db.executemany(sql.format(dialect.ph), [(cid,) for cid in missing])
        if not calls:
            return
        signals: dict[str, list[tuple[str, Signal]]] = {}
        cond, params = dialect.any_of("parent_id", sorted(calls))
        for fid, parent, rating, regen, edit in db.execute(
            "SELECT event_id, parent_id, rating, regenerated, edited FROM events "
            f"WHERE kind = 'feedback' AND {cond}",
            params,
        ).fetchall():
            signals.setdefault(parent, []).append((str(fid), (rating, regen, edit)))
        deltas: dict[Key, list[int]] = {}
        for cid, info in calls.items():
            new_ids = fresh.get(cid, set())
            everything = signals.get(cid, [])
            if cid in adopted:  # none of its feedback was rolled up yet
                new, old = [s for _, s in everything], []
            else:
                new = [s for fid, s in everything if fid in new_ids]
                old = [s for fid, s in everything if fid not in new_ids]
            add_call(deltas, info, new, old, dialect.hour)
        if deltas:
            daily = HOURLY.coarsen(deltas, dialect.day)
            HOURLY.upsert(db, dialect, deltas)
            DAILY.upsert(db, dialect, daily)

    def clear(self, conn: sa.Connection, window: Window) -> None:
        """Delete the window's buckets."""
        clear_buckets(conn, self.tables[:2], window)

    def rebuild(self, conn: sa.Connection, window: Window) -> None:
        """Recompute the rollups of the window's calls from them and all their feedback."""
        rebuild_feedback_on(conn, since=window.since, until=window.until, project=window.project)


FEEDBACK = Feedback()


def rebuild_feedback_on(
    conn: sa.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    project: str | None = None,
) -> None:
    """Recompute the feedback rollups of calls in [since, until) (whole days) from events.

    The caller (``rollups.rebuild_on``) has deleted the window's rows.
    """
    call = events.alias("call")
    fb = events.alias("fb")
    where = (fb.c.kind == "feedback") & (call.c.kind == "llm_call")
    if since is not None:
        where &= call.c.occurred_at >= since
    if until is not None:
        where &= call.c.occurred_at < until
    if project is not None:
        where &= call.c.project == project
    query = (
        sa.select(
            call.c.event_id, call.c.occurred_at, call.c.project, call.c.feature, call.c.model,
            call.c.provider, call.c.status, call.c.latency_ms, fb.c.rating, fb.c.regenerated,
            fb.c.edited,
        )
        .select_from(fb.join(call, sa.cast(call.c.event_id, sa.String(36)) == fb.c.parent_id))
        .where(where)
    )  # fmt: skip
    per_call: dict[Any, tuple[CallInfo, list[Signal]]] = {}
    for r in conn.execute(query):
        found = per_call.get(r[0])
        if found is None:
            found = per_call[r[0]] = (tuple(r[1:8]), [])
        found[1].append((r[8], r[9], r[10]))
    deltas: dict[Key, list[int]] = {}
    for info, signals in per_call.values():
        add_call(deltas, info, signals, [], datetime_hour)
    HOURLY.insert(conn, deltas)
    DAILY.insert(conn, HOURLY.coarsen(deltas, datetime_day))
    if since is None and until is None:
        # orphans whose call exists by now are counted above
        stored = sa.select(sa.cast(events.c.event_id, sa.String(36))).where(
            events.c.kind == "llm_call"
        )
        conn.execute(sa.delete(feedback_orphans).where(feedback_orphans.c.call_id.in_(stored)))
