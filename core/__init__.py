"""Host-free core of ComfyUI-AdaptiveSkip: torch/numpy only, never imports ComfyUI."""
