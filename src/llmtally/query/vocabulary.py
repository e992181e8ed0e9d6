"""The names reports share: dimensions, filters, intervals, statuses. Imports nothing heavy.

Each list exists once, here, as a ``Literal`` type (what type checkers, the report
registry's parameters and their JSON Schema see) with its runtime tuple derived from it.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# what a breakdown or a stats report can be grouped by
GroupBy = Literal["model", "provider", "feature", "actor", "session", "project", "status"]
GROUP_BY: Final[tuple[str, ...]] = get_args(GroupBy)

# what feedback can be grouped by (feedback rollups are keyed by feature and model)
FeedbackBy = Literal["feature", "model"]
FEEDBACK_BY: Final[tuple[str, ...]] = get_args(FeedbackBy)

Interval = Literal["hour", "day", "week"]
INTERVALS: Final[tuple[str, ...]] = get_args(Interval)

Status = Literal["success", "error"]
STATUSES: Final[tuple[str, ...]] = get_args(Status)

# the equality filters every report over events takes, in the order options are shown
EQUALITY_FILTERS: Final = ("project", "feature", "model", "provider", "actor", "status")

# report dimension → events column (the grouping dimensions plus the internal ones)
DIMENSION_COLUMNS: Final[dict[str, str]] = {
    "model": "model",
    "provider": "provider",
    "feature": "feature",
    "actor": "actor_id",
    "session": "session_id",
    "project": "project",
    "status": "status",
    "error_type": "error_type",
    "name": "name",
}
