"""Active actors as bitmaps, kept current by the write path.

Every actor id gets a number (``actor_numbers``, assigned once, never reused). Per
project and per 5-minute, hour and day bucket, ``rollup_actor_bits`` holds the set of
actors with at least one ``llm_call`` as a bitmap (bit ``n`` set), zlib-compressed.
The number of distinct actors over a window is the population count of the OR of the
bitmaps of its whole days, hours and 5-minute buckets, plus the actors of its ragged
ends read from events. A new actor is numbered inside the write transaction, under the
same lock as the rollups, so numbers never collide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from llmtally.store.derived import (
    POS,
    Dialect,
    Key,
    Merge,
    Table,
    Window,
    clear_buckets,
    decode_bits,
    encode_bits,
)
from llmtally.store.schema import rollup_actor_bits

_OCC, _KIND, _PROJECT, _ACTOR = POS["occurred_at"], POS["kind"], POS["project"], POS["actor_id"]
_CHUNK = 500
BITS_TABLE = Table(rollup_actor_bits, ("level", "bucket", "project"), (("bits", Merge.BITS),))


encode = encode_bits  # the blob format lives with the merge that ORs blobs
decode = decode_bits


def actor_sets(rows: Iterable[Sequence[Any]], fine: Any) -> dict[tuple[Any, str], set[str]]:
    """Actors with an llm_call per (5-minute bucket, project) among ``rows``."""
    out: dict[tuple[Any, str], set[str]] = {}
    for row in rows:
        actor = row[_ACTOR]
        if actor is None or row[_KIND] != "llm_call":
            continue
        key = (fine(row[_OCC]), row[_PROJECT])
        found = out.get(key)
        if found is None:
            out[key] = {actor}
        else:
            found.add(actor)
    return out


def masks(
    sets: dict[tuple[Any, str], set[str]], numbers: dict[str, int], dialect: Dialect
) -> dict[Key, list[Any]]:
    """Bitmap accumulators per (level, bucket, project) from 5-minute actor sets."""
    out: dict[Key, list[Any]] = {}
    hour, day = dialect.hour, dialect.day
    for (bucket, project), actors in sets.items():
        mask = 0
        for actor in actors:
            mask |= 1 << numbers[actor]
        hour_bucket = hour(bucket)
        for key in (("m", bucket, project), ("h", hour_bucket, project),
                     ("d", day(hour_bucket), project)):  # fmt: skip
            found = out.get(key)
            if found is None:
                out[key] = [mask]
            else:
                found[0] |= mask
    return out


def numbers(db: Any, dialect: Dialect, actors: set[str]) -> dict[str, int]:
    """The numbers of ``actors``, assigning the missing ones (in the write transaction)."""
    ph = dialect.ph
    out: dict[str, int] = {}
    wanted = sorted(actors)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        cond, params = dialect.any_of("actor_id", chunk)
        found = db.execute(f"SELECT actor_id, n FROM actor_numbers WHERE {cond}", params)
        out.update((a, int(n)) for a, n in found.fetchall())
    missing = [actor for actor in wanted if actor not in out]
    if missing:
        row = db.execute("SELECT coalesce(max(n), -1) FROM actor_numbers").fetchone()
        nxt = int(row[0])
        # under the rollup lock (SQLite: the write lock): nobody numbers in between
        assigned = []
        for actor in missing:
            nxt += 1
            out[actor] = nxt
            assigned.append((actor, nxt))
        db.executemany(f"INSERT INTO actor_numbers (actor_id, n) VALUES ({ph}, {ph})", assigned)
    return out


class Bits:
    """Active-actor bitmaps: numbers new actors and ORs them into their buckets' bitmaps."""

    name = "bits"
    tables: tuple[sa.Table, ...] = (rollup_actor_bits,)
    reads: tuple[str, ...] = ("occurred_at", "kind", "project", "actor_id")
    replay = True

    def maintain(self, db: Any, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> None:
        """OR the actors of ``rows`` into the bitmaps of their buckets."""
        sets = actor_sets(rows, dialect.five_min)
        if sets:
            known = numbers(db, dialect, set().union(*sets.values()))
            BITS_TABLE.upsert(db, dialect, masks(sets, known, dialect))

    def clear(self, conn: sa.Connection, window: Window) -> None:
        """Delete the window's bitmaps (actor numbers are kept: they are never reused)."""
        clear_buckets(conn, self.tables, window)

    def rebuild(self, conn: sa.Connection, window: Window) -> None:
        """Nothing beyond the replay."""


BITS = Bits()
