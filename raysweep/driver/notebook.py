"""The notebook flow: `raysweep.sweep` / `raysweep.agent` mirror `wandb.sweep` / `wandb.agent`.

A notebook written for W&B switches by changing two calls::

    sweep_id = raysweep.sweep(sweep_config)          # was: wandb.sweep(sweep_config)
    raysweep.agent(sweep_id, function=train, count=20)  # was: wandb.agent(...)

`train()` keeps its ``with wandb.init(config=...)``, ``wandb.config`` and
``wandb.log`` calls: inside each Ray worker raysweep's capture module becomes
``wandb`` before the function is unpickled, so those calls feed Ray.  Several
agents on one sweep id share its run log and its budget (``run_cap``, the
grid's points), like several W&B agents on one sweep.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ray import cloudpickle
from ray import tune

from raysweep.spec.tree import AttrDict
from raysweep.errors import RaysweepError
from raysweep.names import check_id, new_sweep_id, run_id_for
from raysweep.runlog.log import RunLog
from raysweep.driver.runner import SweepResult, run, ship_by_value
from raysweep.driver.settings import DEFAULT_OUT, FunctionTarget, launched_function
from raysweep.spec.load import SweepSpec, load_spec
from raysweep.trial.session import start_attempt


def sweep(sweep: str | os.PathLike[str] | Mapping[str, Any] | SweepSpec, *,
          out: str | os.PathLike[str] | None = None, entity: str | None = None,
          project: str | None = None) -> str:
    """Create a sweep's run log (nothing runs yet) and return its id, like `wandb.sweep`.

    `entity` and `project` are accepted so W&B calls work unchanged; they name
    W&B's server-side places and mean nothing here.
    """
    spec = sweep if isinstance(sweep, SweepSpec) else load_spec(sweep)
    sweep_id = new_sweep_id()
    RunLog.create(Path(out or DEFAULT_OUT).resolve(), spec, sweep_id)
    return sweep_id


def find_sweep(sweep_id: str, out: str | os.PathLike[str] | None = None) -> Path:
    """The run-log directory of `sweep_id` under `out` (``<name>-<id>``)."""
    check_id(sweep_id, "sweep id")
    root = Path(out or DEFAULT_OUT).resolve()
    matches = sorted(root.glob(f"*-{sweep_id}")) if root.is_dir() else []
    if not matches:
        raise RaysweepError(f"no sweep {sweep_id} under {root}: create it with `raysweep sweep FILE` "
                            "or pass the --out it was created with")
    return matches[0]


def wandb_function_trainable(function: Callable[..., Any], sweep_id: str,
                             runs_dir: str | None = None) -> Callable[[dict], None]:
    """Wrap a `train` written for `wandb.agent` as a Ray trainable.

    The function travels as cloudpickle bytes and is unpickled only after the
    capture module is ``wandb`` in the worker, so its ``wandb`` global lands
    there.  A function that takes an argument gets the run config, like a
    raysweep function-mode trial.  With the run log's `runs_dir`, ``wandb.run``
    of a later attempt is resumed: its folder, ``resumed`` and step go on.
    """
    ship_by_value(function)
    payload = cloudpickle.dumps(function)
    takes_config = any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                       for p in inspect.signature(function).parameters.values())

    def trainable(config: dict[str, Any]) -> None:
        from raysweep.trial import capture

        run_id = run_id_for(sweep_id, tune.get_context().get_trial_id())
        current = start_attempt(runs_dir, sweep_id)
        capture.install_in_process(
            config, run_id=run_id, files=str(current.files) if current else None,
            resumed_at=current.next_step if current and current.resumed else None)
        train = cloudpickle.loads(payload)
        if takes_config:
            train(AttrDict(config))
        else:
            train()
        capture.finish()

    trainable.__name__ = getattr(function, "__name__", "train")
    return trainable


def agent(sweep_id: str, function: Callable[..., Any] | FunctionTarget | None = None,
          count: int | None = None, *, out: str | os.PathLike[str] | None = None,
          entity: str | None = None, project: str | None = None, **options: Any) -> SweepResult:
    """Run up to `count` runs of the sweep `sweep_id`, like `wandb.agent`.

    `function` is the function to run, or its `FunctionTarget` (``raysweep
    agent --function``, recorded in sweep.json).  Without it, the function an
    earlier driver of the sweep ran by name runs again, else the sweep's own
    ``program``/``command``.  Other keyword arguments are those of
    `raysweep.run` (resources, seed, address...); `entity` and `project`, as
    in `sweep`, are accepted and unused.
    """
    path = find_sweep(sweep_id, out)
    if function is None:
        function = launched_function(RunLog.open(path).sweep_info())
    target = function if isinstance(function, FunctionTarget) else None
    train = function.load() if isinstance(function, FunctionTarget) else function
    trainable = wandb_function_trainable(train, sweep_id, str(path / "runs")) if train is not None else None
    return run(load_spec(path / "sweep.yaml"), count=count, attach=path, trainable=trainable,
               function=target, **options)

