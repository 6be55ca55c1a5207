"""SkipPathVisualizer and SkipPathOracle: draw skip paths and search the best path for a call budget."""
from __future__ import annotations

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
