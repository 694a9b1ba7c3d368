"""The search: W&B's methods and Hyperband expressed for Ray Tune.

Owns the search space (W&B distributions as Ray domains), the searchers per
method (grid, random, bayes) and Hyperband as ASHA with W&B's rungs.  Reads
`raysweep.spec`; nothing here starts Ray or a process.  Ray's private API is
used only through `raysweep.search._ray_internals`.  Importing this package
imports nothing: `raysweep validate` and `show` load only what they use.
"""
