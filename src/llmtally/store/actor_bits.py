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

import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from llmtally.event import COLUMN_NAMES
from llmtally.store.schema import actor_numbers, rollup_actor_bits

_I = {name: i for i, name in enumerate(COLUMN_NAMES)}
_K_OCC, _K_KIND, _K_PROJECT, _K_ACTOR = _I["occurred_at"], _I["kind"], _I["project"], _I["actor_id"]
_CHUNK = 500
Key = tuple[str, Any, str]  # (level, bucket, project)


def encode(mask: int) -> bytes:
    """Blob of a bitmap."""
    return zlib.compress(mask.to_bytes((mask.bit_length() + 7) // 8, "little"), 1)


def decode(blob: bytes | memoryview | None) -> int:
    """Bitmap of a blob (0 for None)."""
    if not blob:
        return 0
    return int.from_bytes(zlib.decompress(bytes(blob)), "little")


def actor_sets(
    rows: Iterable[Sequence[Any]], fine: Callable[[Any], Any]
) -> dict[tuple[Any, str], set[str]]:
    """Actors with an llm_call per (5-minute bucket, project) among ``rows``."""
    out: dict[tuple[Any, str], set[str]] = {}
    for row in rows:
        actor = row[_K_ACTOR]
        if actor is None or row[_K_KIND] != "llm_call":
            continue
        key = (fine(row[_K_OCC]), row[_K_PROJECT])
        found = out.get(key)
        if found is None:
            out[key] = {actor}
        else:
            found.add(actor)
    return out


def masks(
    sets: dict[tuple[Any, str], set[str]],
    numbers: dict[str, int],
    hour: Callable[[Any], Any],
    day: Callable[[Any], Any],
) -> dict[Key, int]:
    """Bitmaps per (level, bucket, project) from 5-minute actor sets."""
    out: dict[Key, int] = {}
    for (bucket, project), actors in sets.items():
        mask = 0
        for actor in actors:
            mask |= 1 << numbers[actor]
        hour_bucket = hour(bucket)
        for key in (("m", bucket, project), ("h", hour_bucket, project),
                     ("d", day(hour_bucket), project)):  # fmt: skip
            out[key] = out.get(key, 0) | mask
    return out


class Maintainer:
    """Numbers new actors and ORs bitmaps in a write transaction (SQLite or PostgreSQL)."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        ph = "%s" if self.pg else "?"
        self.ph = ph
        self.assign = (
            f"INSERT INTO actor_numbers (actor_id, n) SELECT {ph}, coalesce(max(n), -1) + 1 "
            # WHERE: SQLite needs it to parse an upsert of a SELECT
            "FROM actor_numbers WHERE true ON CONFLICT DO NOTHING"
        )
        self.select = (
            f"SELECT bits FROM rollup_actor_bits WHERE level = {ph} AND bucket = {ph} "
            f"AND project = {ph}"
        )
        self.upsert = (
            f"INSERT INTO rollup_actor_bits (level, bucket, project, bits) "
            f"VALUES ({ph}, {ph}, {ph}, {ph}) "
            "ON CONFLICT (level, bucket, project) DO UPDATE SET bits = excluded.bits"
        )

    def numbers(self, db: Any, actors: set[str]) -> dict[str, int]:
        """The numbers of ``actors``, assigning the missing ones."""
        out: dict[str, int] = {}
        wanted = sorted(actors)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            if self.pg:
                found = db.execute(
                    "SELECT actor_id, n FROM actor_numbers WHERE actor_id = ANY(%s)", (chunk,)
                )
            else:
                marks = ", ".join("?" * len(chunk))
                found = db.execute(
                    f"SELECT actor_id, n FROM actor_numbers WHERE actor_id IN ({marks})", chunk
                )
            out.update((a, int(n)) for a, n in found.fetchall())
        for actor in wanted:
            if actor not in out:
                db.execute(self.assign, (actor,))
                row = db.execute(
                    f"SELECT n FROM actor_numbers WHERE actor_id = {self.ph}", (actor,)
                ).fetchone()
                out[actor] = int(row[0])
        return out

    def apply(
        self,
        db: Any,
        new_rows: Sequence[Sequence[Any]],
        fine: Callable[[Any], Any],
        hour: Callable[[Any], Any],
        day: Callable[[Any], Any],
    ) -> None:
        """OR the actors of ``new_rows`` into the bitmaps of their buckets."""
        sets = actor_sets(new_rows, fine)
        if not sets:
            return
        numbers = self.numbers(db, set().union(*sets.values()))
        params = []
        for key, mask in masks(sets, numbers, hour, day).items():
            old = db.execute(self.select, key).fetchone()
            if old is not None:
                mask |= decode(old[0])
            params.append((*key, encode(mask)))
        db.executemany(self.upsert, params)


def insert_masks(conn: sa.Connection, found: dict[Key, int]) -> None:
    """Insert complete (rebuilt) bitmaps through SQLAlchemy."""
    rows = [
        {"level": level, "bucket": bucket, "project": project, "bits": encode(mask)}
        for (level, bucket, project), mask in found.items()
    ]
    if rows:
        conn.execute(sa.insert(rollup_actor_bits), rows)


def known_numbers(conn: sa.Connection) -> dict[str, int]:
    """Every actor's number."""
    c = actor_numbers.c
    return {a: int(n) for a, n in conn.execute(sa.select(c.actor_id, c.n))}


def number_all(conn: sa.Connection, actors: Iterable[str], known: dict[str, int]) -> None:
    """Give every actor in ``actors`` a number (``known`` is updated in place)."""
    missing = sorted(set(actors) - known.keys())
    if not missing:
        return
    start = conn.execute(sa.select(sa.func.max(actor_numbers.c.n))).scalar()
    nxt = -1 if start is None else int(start)
    rows = []
    for actor in missing:
        nxt += 1
        known[actor] = nxt
        rows.append({"actor_id": actor, "n": nxt})
    conn.execute(sa.insert(actor_numbers), rows)
