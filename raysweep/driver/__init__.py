"""The driver: everything below wired into one Ray Tune experiment.

Owns `raysweep.run` and its settings (whose defaults the CLI shows), the
notebook flow (`raysweep.sweep`/`raysweep.agent`), the connection to a local
or remote Ray cluster, storage, signal handling and the progress display.
The CLI is a thin layer over this package.
"""
