"""The agent's macro table: the macros W&B's agent fills in, and the items it would drop."""

from __future__ import annotations

import pytest

from raysweep.spec import macros
from reference import run_reference


def test_known_macros_are_the_agents() -> None:
    """Every macro the agent fills in, minus ``args_dict`` (its keys would leak in as arguments)."""
    agent_macros = run_reference("""
        import json
        from wandb.sdk.launch.sweeps.utils import create_sweep_command_args
        names = set(create_sweep_command_args({"args": {}})) | {"interpreter", "program", "args_json_file", "env"}
        print(json.dumps(sorted(names - {"args_dict"})))
    """)
    assert macros.KNOWN_MACROS == {"${" + name + "}" for name in agent_macros}


@pytest.mark.parametrize(("command", "unknown"), [
    (["${env}", "${interpreter}", "${program}", "${args}"], []),
    (["${args_dict}", "${project}", "${ARGS}"], ["${args_dict}", "${project}", "${ARGS}"]),
    (["--x=${foo}", "${envvar:HOME}", "${envvar:A}${program}"], []),
    ([3, True, None], []),
], ids=["known", "unknown", "inside_items", "non_strings"])
def test_unknown_macros(command: list[object], unknown: list[str]) -> None:
    assert macros.unknown_macros(command) == unknown
