"""Drive W&B's reference sweep engine (`sweeps==0.3.0`) and `wandb` in their own venv.

The engine pins numpy<2, so it cannot live in the project's environment; the test
setup (`scripts/test`) builds `.venv-ref/` once and the tests talk to it through
a subprocess: each call runs a Python snippet there and parses the JSON it prints
on its last line of stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def reference_python() -> str:
    """Path of the reference venv's interpreter; fails loudly when it is missing."""
    python = os.environ.get("RAYSWEEP_REF_PYTHON", str(REPO / ".venv-ref" / "bin" / "python"))
    if not Path(python).exists():
        raise RuntimeError(
            f"reference interpreter {python} not found: run `bash scripts/test` once "
            "(it builds .venv-ref with sweeps==0.3.0 and wandb) or set RAYSWEEP_REF_PYTHON"
        )
    return python


def run_reference(code: str, *, stdin: str | None = None, timeout: float = 120) -> Any:
    """Run `code` in the reference venv and return the JSON value of its last stdout line."""
    proc = subprocess.run(
        [reference_python(), "-c", textwrap.dedent(code)],
        input=stdin, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "WANDB_MODE": "disabled"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"reference snippet failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
