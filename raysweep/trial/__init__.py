"""What runs inside a Ray worker for each run of the sweep.

Owns the result protocol a trial speaks to Ray (one W&B history row per Ray
result), function trainables' `raysweep.log`, the sweep's `program`/`command`
launched like `wandb agent`, the reaper that leaves no program behind, and the
`wandb` capture (with its shim) that turns a script's unmodified `wandb` calls
into those results.
"""
