"""Event ids: re-exported from ``llmtally.event``, where the id scheme is defined."""

from __future__ import annotations

from llmtally.event import is_uuid, new_event_id

__all__ = ["is_uuid", "new_event_id"]
