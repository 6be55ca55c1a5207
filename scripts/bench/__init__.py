"""Helpers of scripts/benchmark.py: the run plan, the instrumented ComfyUI harness, metrics, reports and plots."""
