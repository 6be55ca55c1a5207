"""On a ComfyUI without the wrapper API the pack registers nothing and says so in one log line."""
from __future__ import annotations

import importlib.util
import logging
import sys


def test_missing_wrapper_api_refuses_cleanly(host, monkeypatch, caplog):
    import comfy.patcher_extension as pe
    monkeypatch.delattr(pe.WrappersMP, "PREDICT_NOISE")
    pack_dir = host.pack.__file__.rsplit("/", 1)[0]
    name = "adaptive_skip_old_host_probe"
    spec = importlib.util.spec_from_file_location(name, pack_dir + "/__init__.py",
                                                  submodule_search_locations=[pack_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with caplog.at_level(logging.ERROR):
            spec.loader.exec_module(module)
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    assert module.NODE_CLASS_MAPPINGS == {}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "PREDICT_NOISE" in errors[0] and "update ComfyUI" in errors[0]


def test_present_api_registers(host):
    assert "AdaptiveSkipModel" in host.mappings
