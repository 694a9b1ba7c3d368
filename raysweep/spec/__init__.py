"""The sweep file: load a W&B sweep YAML into a frozen, typed `SweepSpec`.

Owns what a sweep file means and nothing else: its keys, defaults and
violations (every one at once, with its key path), the parameter tree, W&B's
distributions with their exact `ppf`, and the agent's command-line macros.
Knows nothing of Ray, processes or files other than the sweep file: every
layer above reads it, it reads none of them.
"""
