"""Nested configs: the run config a training function receives, and their leaves.

W&B code reads hyperparameters as ``config.lr`` and ``config["lr"]`` and nested
parameters as ``config.optimizer.lr``; raysweep hands trials the same shape so
a `train(config)` written for `wandb.config` runs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class AttrDict(dict):
    """A dict whose keys are also attributes, recursively for nested dicts."""

    def __init__(self, data: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__()
        for key, value in {**dict(data or {}), **kwargs}.items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, Mapping) and not isinstance(value, AttrDict):
            value = AttrDict(value)
        super().__setitem__(key, value)

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}; keys: {sorted(self)}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def as_dict(self) -> dict[str, Any]:
        """A plain nested dict copy (what `yaml.safe_dump`/`json.dumps` accept)."""
        return {k: v.as_dict() if isinstance(v, AttrDict) else v for k, v in self.items()}


def leaves(tree: Mapping[str, Any], *, sort: bool = False) -> dict[tuple[str, ...], Any]:
    """Every value of a nested mapping that is not a mapping itself, by its key path.

    One walk serves the sweep's parameter tree (`sort`: names sorted at every
    level, the order W&B's engine uses) and a run's nested config (as given).
    """
    flat: dict[tuple[str, ...], Any] = {}
    for key in sorted(tree) if sort else tree:
        value = tree[key]
        if isinstance(value, Mapping):
            flat.update({(key, *path): leaf for path, leaf in leaves(value, sort=sort).items()})
        else:
            flat[(key,)] = value
    return flat
