"""raysweep's stand-in for the ``wandb`` package inside the programs a sweep runs.

raysweep puts ``raysweep/_shim`` first on the program's PYTHONPATH, so
``import wandb`` lands here even when the real package is installed; this
module then replaces itself in ``sys.modules`` by `raysweep.trial.capture`, which
implements the calls sweep scripts make (see its docstring).  capture.py and
the one module it imports, ``raysweep/values.py``, are loaded by path, not
through ``import raysweep``: the program need not have raysweep on its path,
and does not pay for the package's imports (Ray).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_PACKAGE = Path(__file__).resolve().parents[3]  # raysweep/


def _load(name: str, path: Path) -> ModuleType:
    """Module `name` from `path`, registered under its own name (dataclasses and pickle look it up)."""
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it
        spec.loader.exec_module(module)
    return module


_load("raysweep.values", _PACKAGE / "values.py")
sys.modules[__name__] = _load("raysweep.trial.capture", _PACKAGE / "trial" / "capture.py")
