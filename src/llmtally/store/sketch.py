"""A mergeable latency histogram with 1% relative error (log-spaced buckets, DDSketch-style).

Bucket ``i`` holds values in ``(γ^(i-1), γ^i]`` with ``γ = (1 + α) / (1 - α)`` and
``α = 0.01``; its representative value ``2γ^i / (γ + 1)`` is within 1% of every value in
it. Quantiles interpolate between the representatives of the two order statistics
around ``q·(n-1)``, exactly like ``percentile_cont`` does between the values themselves,
so the estimate stays within 1% of the exact percentile. Values ≤ 0 go to a zero bucket.

Stored as a compact blob: little-endian int32 pairs ``(bucket, count)`` sorted by bucket.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from sys import byteorder

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
ZERO = -(2**31)  # bucket of values <= 0
_SWAP = byteorder != "little"

Histogram = dict[int, int]


def bucket(value: float) -> int:
    """The bucket index of a value."""
    if value <= 0:
        return ZERO
    return math.ceil(math.log(value) / _LOG_GAMMA)


def representative(index: int) -> float:
    """The value a bucket stands for (within ALPHA of anything in it)."""
    if index == ZERO:
        return 0.0
    return 2 * GAMMA**index / (GAMMA + 1)


def add_values(hist: Histogram, values: Iterable[float]) -> Histogram:
    """Count values into ``hist`` (in place) and return it."""
    log_gamma = _LOG_GAMMA
    ceil, log = math.ceil, math.log
    for value in values:
        index = ceil(log(value) / log_gamma) if value > 0 else ZERO
        hist[index] = hist.get(index, 0) + 1
    return hist


def merge(into: Histogram, other: Mapping[int, int]) -> Histogram:
    """Add ``other``'s counts to ``into`` (in place) and return it."""
    for index, count in other.items():
        into[index] = into.get(index, 0) + count
    return into


def encode(hist: Mapping[int, int]) -> bytes | None:
    """Blob form of a histogram (None when empty)."""
    if not hist:
        return None
    flat = array("i")
    for index in sorted(hist):
        flat.append(index)
        flat.append(hist[index])
    if _SWAP:
        flat.byteswap()
    return flat.tobytes()


def decode(blob: bytes | memoryview | None) -> Histogram:
    """Histogram from its blob form."""
    if not blob:
        return {}
    flat = array("i")
    flat.frombytes(bytes(blob))
    if _SWAP:
        flat.byteswap()
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def merge_blob(into: Histogram, blob: bytes | memoryview | None) -> Histogram:
    """Add a stored histogram to ``into`` without building an intermediate dict."""
    if blob:
        flat = array("i")
        flat.frombytes(bytes(blob))
        if _SWAP:
            flat.byteswap()
        get = into.get
        for index, count in zip(flat[0::2], flat[1::2], strict=True):
            into[index] = get(index, 0) + count
    return into


def merge_blobs(into: Histogram, blobs: Iterable[bytes | memoryview | None]) -> Histogram:
    """Add many stored histograms to ``into`` at once.

    A report merges thousands of rollup rows; numpy adds all their (bucket, count) pairs
    in one ``bincount`` instead of one dictionary update per pair in Python.
    """
    present = [bytes(b) for b in blobs if b]
    if len(present) < 8:
        for blob in present:
            merge_blob(into, blob)
        return into
    import numpy as np

    flat = np.frombuffer(b"".join(present), dtype="<i4")
    index = flat[0::2].astype(np.int64)
    count = flat[1::2].astype(np.int64)
    zero = index == ZERO
    if zero.any():
        into[ZERO] = into.get(ZERO, 0) + int(count[zero].sum())
        index, count = index[~zero], count[~zero]
    if index.size:
        low = int(index.min())
        # float64 sums are exact for counts below 2**53
        totals = np.bincount(index - low, weights=count)
        found = np.nonzero(totals)[0]
        get = into.get
        for offset, total in zip(found.tolist(), totals[found].tolist(), strict=True):
            key = offset + low
            into[key] = get(key, 0) + int(total)
    return into


def quantiles(hist: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    """Interpolated quantiles (``percentile_cont`` semantics) of a histogram."""
    wanted = list(qs)
    total = sum(hist.values())
    if total == 0:
        return [None] * len(wanted)
    ordered = sorted(hist.items())
    results: list[float | None] = []
    for q in wanted:
        pos = q * (total - 1)
        lo = math.floor(pos)
        lo_value = _value_at(ordered, lo)
        hi_value = _value_at(ordered, lo + 1) if pos > lo else lo_value
        results.append(lo_value + (hi_value - lo_value) * (pos - lo))
    return results


def _value_at(ordered: list[tuple[int, int]], rank: int) -> float:
    seen = 0
    for index, count in ordered:
        seen += count
        if rank < seen:
            return representative(index)
    return representative(ordered[-1][0])
