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
    "run": "raysweep.driver.runner",
    "Resources": "raysweep.driver.settings",
    "SweepResult": "raysweep.driver.runner",
    "log": "raysweep.trial.session",
    "get_checkpoint": "raysweep.trial.session",
    "sweep": "raysweep.driver.notebook",
    "agent": "raysweep.driver.notebook",
    "load": "raysweep.runlog.log",
    "report": "raysweep.results.page",
    "load_spec": "raysweep.spec.load",
    "SweepSpec": "raysweep.spec.load",
    "RaysweepError": "raysweep.errors",
    "SweepConfigError": "raysweep.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'raysweep' has no attribute {name!r}")
