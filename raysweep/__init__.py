"""raysweep: run W&B sweep YAML files, unchanged, on Ray Tune."""

from __future__ import annotations

__version__ = "0.1.0"
