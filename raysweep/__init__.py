"""raysweep: run W&B sweep YAML files, unchanged, on Ray Tune.

>>> import raysweep
>>> result = raysweep.run("configs/digits_mlp.yaml", train, count=30)   # doctest: +SKIP
>>> sweep_id = raysweep.sweep(sweep_config)                              # doctest: +SKIP
>>> raysweep.agent(sweep_id, function=train, count=20)                   # doctest: +SKIP

Names are imported on first use, so `import raysweep` stays cheap (Ray is
loaded only when a sweep runs or a trial logs).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "raysweep.runner",
    "Resources": "raysweep.runner",
    "SweepResult": "raysweep.runner",
    "log": "raysweep.session",
    "sweep": "raysweep.notebook",
    "agent": "raysweep.notebook",
    "load": "raysweep.runlog",
    "report": "raysweep.html_report",
    "load_spec": "raysweep.spec",
    "SweepSpec": "raysweep.spec",
    "RaysweepError": "raysweep.errors",
    "SweepConfigError": "raysweep.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'raysweep' has no attribute {name!r}")
