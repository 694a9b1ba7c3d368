"""The run log: the W&B-shaped record of a sweep on disk.

Owns `sweep.json`, `runs.jsonl` and each run's folder (config, history,
summary, metadata, output), written atomically or as whole appended lines so
nothing recorded is torn; the Ray callback that records trials as they go;
and `raysweep.load`, which reads it back.
"""
