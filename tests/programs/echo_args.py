"""Writes what it was started with (argv, environment, the agent's files, wandb.config) as JSON.

The output path comes from the environment (``ECHO_OUT``), never from argv,
which is what the tests put under scrutiny.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import wandb


def _read(path: str | None) -> str | None:
    return Path(path).read_text() if path and Path(path).exists() else None


def main() -> None:
    run = wandb.init()
    param_path = os.environ.get("WANDB_SWEEP_PARAM_PATH")
    report = {
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "stdin": sys.stdin.read(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("WANDB_", "RAYSWEEP_", "PYTHON"))},
        "param_yaml": _read(param_path),
        "args_json": _read(param_path[: -len(".yaml")] + ".json") if param_path else None,
        "config": dict(wandb.config),
        "run_id": run.id,
        "wandb_module": wandb.__name__,
    }
    Path(os.environ["ECHO_OUT"]).write_text(json.dumps(report))
    wandb.log({"ok": 1})


if __name__ == "__main__":
    main()
