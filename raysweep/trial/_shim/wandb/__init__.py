"""raysweep's stand-in for the ``wandb`` package inside the programs a sweep runs.

raysweep puts ``raysweep/_shim`` first on the program's PYTHONPATH, so
``import wandb`` lands here even when the real package is installed; this
module then replaces itself in ``sys.modules`` by `raysweep.trial.capture`, which
implements the calls sweep scripts make (see its docstring).  capture.py is
loaded by path, not through ``import raysweep``: the program need not have
raysweep on its path, and does not pay for the package's imports (Ray).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def _capture() -> ModuleType:
    module = sys.modules.get("raysweep.trial.capture")
    if module is None:
        spec = importlib.util.spec_from_file_location(
            "raysweep.trial.capture", Path(__file__).resolve().parents[2] / "capture.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # before running it: dataclasses and pickle look it up
        spec.loader.exec_module(module)
    return module


sys.modules[__name__] = _capture()
