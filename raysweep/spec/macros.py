"""The command-line macros of W&B's agent: which ones exist and the default command.

A sweep file's ``command`` is checked against this table when it is loaded,
and `raysweep.trial.program` expands it when a run starts; both read it here,
so the file layer never imports the process launcher.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: The whole-item macros W&B's agent expands (``${envvar:NAME}`` is expanded inside any item).
KNOWN_MACROS: frozenset[str] = frozenset({
    "${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_no_equals}",
    "${args_no_boolean_flags}", "${args_append_hydra}", "${args_override_hydra}", "${args_json}",
    "${args_json_file}",
})
ENVVAR_MACRO = re.compile(r"\$\{envvar\:([A-Z0-9_]*)\}")
#: The agent's command when the sweep file has none.
DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")


def unknown_macros(command: Sequence[object]) -> list[str]:
    """The whole-item ``${...}`` items of `command` that W&B's agent would silently drop."""
    items = (ENVVAR_MACRO.sub("", str(item)) for item in command)
    return [item for item in items if item.startswith("${") and item.endswith("}") and item not in KNOWN_MACROS]
