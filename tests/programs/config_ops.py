"""Exercises wandb.config, wandb.summary and wandb.log's errors; prints what it saw as JSON.

Run once with the real ``wandb`` (offline) and once with raysweep's stand-in:
the two outputs must be equal.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import wandb

seen: dict[str, Any] = {}


def attempt(name: str, action: Any) -> None:
    """Run `action`; record its result, or the exception's type and message."""
    try:
        seen[name] = action()
    except Exception as exc:  # noqa: BLE001 - recording W&B's exceptions is the point
        seen[name] = [type(exc).__name__, str(exc) if not isinstance(exc, AttributeError) else ""]


def main() -> None:
    run = wandb.init(config={"lr": 0.5, "epochs": 3, "opt": {"kind": "adam", "mom": 0.9}, "--dashed": 1,
                             "batch": 32})
    config = wandb.config
    seen["after_init"] = dict(config)
    seen["keys"], seen["items"] = list(config.keys()), [list(kv) for kv in config.items()]
    seen["ids"] = [run.id, run.sweep_id]
    config.update({"lr": 1, "new": 2})
    config.epochs = 3
    attempt("change_without_allow", lambda: config.__setattr__("epochs", 4))
    config.update({"epochs": 5}, allow_val_change=True)
    config.setdefaults({"epochs": 9, "z": 1})
    config["lr"] = 2
    config.update(argparse.Namespace(bs=32, flag=True))
    attempt("missing_attribute", lambda: config.missing)
    seen["get"] = [config.get("missing", "default"), config.get("lr"), "lr" in config, "nope" in config]
    seen["final"] = config.as_dict()
    attempt("log_not_a_dict", lambda: wandb.log([1, 2]))
    attempt("log_key_not_str", lambda: wandb.log({1: 2}))
    for epoch in range(3):
        wandb.log({"loss": 1.0 / (epoch + 1), "epoch": epoch})
    wandb.summary["best"] = 0.25
    run.summary.update({"final_acc": 0.9, "loss": 0.1})
    seen["summary"] = {k: run.summary[k] for k in ("loss", "epoch", "best", "final_acc", "_step")}
    run.finish()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
