"""EvoTimestepSchedule, LoadTimestepSchedule and TimestepScheduleFromText: searched sigma schedules (classic API)."""
from __future__ import annotations

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
