"""Run a sweep's own program for each trial, the way ``wandb agent`` runs it.

Command line: `build_command` expands the sweep's ``command`` (default
``${env} ${interpreter} ${program} ${args}``) exactly like ``wandb_agent.py``:
``${envvar:NAME}`` is replaced inside any item, then an item that is one whole
``${macro}`` becomes that macro's list of arguments, each rendered ``f"{v}"``
(``--flag=False``, ``--x=None``, ``--opt={'lr': 0.1}``).  ``${interpreter}`` is
the Python running the trial (the agent writes a bare ``python``).  The agent's
files are written where it writes them: ``$WANDB_DIR/wandb/sweep-<id>/config-<run>.yaml``
(``WANDB_SWEEP_PARAM_PATH``) and, when the command uses ``${args_json_file}``,
``config-<run>.json``.  No shell: values with spaces, quotes or ``;`` arrive as they are.

Process: `raysweep.trial.child` runs the program under a reaper, so no program
outlives its trial, and hands each row the program's ``wandb`` calls send
(`raysweep.trial.capture`) to `raysweep.trial.session.report_row` as it comes, so Ray
sees every step as it happens.  stdout and stderr go, line by line, to
``runs/<id>/output.log`` and, with `--verbose`, to the driver's terminal
(`raysweep.trial.echo`).  A program that fails, or exits 0 without logging,
fails its trial with `raysweep.trial.child.ProgramFailed` or `ProgramSilent`.
"""

from __future__ import annotations

import io
import json
import os
import platform
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from raysweep.trial import attempt
from raysweep.trial.carry import Carrier, persist_every
from raysweep.trial.capture import SIDE_RUNS_ENV, Reporter, ReportFn
from raysweep.values import plain
from raysweep.trial.child import attempt_mark, run_child
from raysweep.trial.echo import Sender
from raysweep.errors import ProgramError
from raysweep.names import run_id_for
from raysweep.spec.macros import DEFAULT_COMMAND, ENVVAR_MACRO, KNOWN_MACROS

if TYPE_CHECKING:
    from raysweep.spec.load import SweepSpec

SHIM_DIR = Path(__file__).resolve().parent / "_shim"
_NEST = ".wbnest[599c28ca25da]."  # W&B's engine joins nested parameter names with this


def engine_order(config: Mapping[str, Any], nesting: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`config` in the key order W&B's engine sends a run's values, which the agent's args follow.

    The engine walks flattened names (``opt.wbnest[599c28ca25da].lr``) sorted,
    then re-nests: plain top-level keys come first, sorted, then the nested
    parameters, and inside those every key is sorted.  `nesting` gives the
    nested parameters as a tree of dicts (`nesting_of` of the sweep's parameters).
    """
    return _ordered(config, nesting or {}, top=True)


def _ordered(value: Any, nesting: Mapping[str, Any], top: bool = False) -> Any:
    if not isinstance(value, Mapping):
        return value
    keys = sorted(value, key=lambda k: (top and k in nesting, k + _NEST if k in nesting else k))
    return {k: _ordered(value[k], nesting[k]) if k in nesting else value[k] for k in keys}


def nesting_of(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The nested parameters of a sweep's ``parameters`` tree, as a tree of dicts."""
    return {k: nesting_of(v) for k, v in parameters.items() if isinstance(v, Mapping)}


def command_args(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every argument macro for `config`, rendered as W&B's ``create_sweep_command_args`` does."""
    macros: dict[str, list[str]] = {name: [] for name in (
        "args", "args_no_hyphens", "args_no_equals", "args_no_boolean_flags", "args_append_hydra",
        "args_override_hydra")}
    for param, value in config.items():
        flag = f"{param}={value}"
        macros["args"].append("--" + flag)
        macros["args_no_hyphens"].append(flag)
        macros["args_no_equals"] += [f"--{param}", str(value)]
        macros["args_append_hydra"].append("+" + flag)
        macros["args_override_hydra"].append("++" + flag)
        if not isinstance(value, bool):
            macros["args_no_boolean_flags"].append("--" + flag)
        elif value:
            macros["args_no_boolean_flags"].append("--" + param)
    macros["args_json"] = [json.dumps(dict(config))]
    return macros


def param_paths(wandb_dir: str, sweep_id: str, run_id: str) -> tuple[str, str]:
    """Where the agent writes a run's config YAML (WANDB_SWEEP_PARAM_PATH) and its args JSON."""
    base = os.path.join(wandb_dir, "wandb", f"sweep-{sweep_id}", f"config-{run_id}")
    return base + ".yaml", base + ".json"


def build_command(spec_command: Sequence[object] | None, program: str | None, config: Mapping[str, Any], *,
                  interpreter: str, sweep_id: str, run_id: str, wandb_dir: str,
                  environ: Mapping[str, str] | None = None) -> list[str]:
    """The argv of one run, as ``wandb agent``'s ``_command_run`` builds it.

    `environ` resolves ``${envvar:NAME}`` (default: this process's environment);
    an unset NAME stays the literal ``NAME``, as in the agent.
    """
    environ = os.environ if environ is None else environ
    macros: dict[str, list[str]] = {
        **command_args(config), "interpreter": [interpreter], "program": [str(program)],
        "args_json_file": [param_paths(wandb_dir, sweep_id, run_id)[1]],
        "env": [] if platform.system() == "Windows" else ["/usr/bin/env"]}
    argv: list[str] = []
    for raw in spec_command or DEFAULT_COMMAND:
        item = ENVVAR_MACRO.sub(lambda m: environ.get(m.group(1), m.group(1)), str(raw))
        if not (item.startswith("${") and item.endswith("}")):
            argv.append(item)
        elif item not in KNOWN_MACROS:
            raise ProgramError(f"command: unknown macro {item!r}; known: {', '.join(sorted(KNOWN_MACROS))}")
        elif item == "${program}" and program is None:
            raise ProgramError("command: ${program} needs a `program:` key; add `program: train.py`")
        else:
            argv += macros[item[2:-1]]
    return argv


def write_param_files(spec_command: Sequence[object] | None, config: Mapping[str, Any], *,
                      sweep_id: str, run_id: str, wandb_dir: str) -> str:
    """Write the agent's files for one run; return WANDB_SWEEP_PARAM_PATH.

    The YAML is byte-for-byte ``config_util.save_config_file_from_dict``; the
    JSON (``${args_json_file}``) is written only when the command uses it, as the agent does.
    """
    yaml_path, json_path = param_paths(wandb_dir, sweep_id, run_id)
    text = b"wandb_version: 1"
    if config:
        text += b"\n\n" + yaml.dump({k: {"value": v} for k, v in config.items()}, Dumper=yaml.SafeDumper,
                                    default_flow_style=False, allow_unicode=True, encoding="utf-8",
                                    sort_keys=False)
    os.makedirs(os.path.dirname(yaml_path), exist_ok=True)
    Path(yaml_path).write_text(text.decode("utf-8"))
    if "${args_json_file}" in [str(item) for item in spec_command or ()]:
        Path(json_path).write_text(command_args(config)["args_json"][0])
    return yaml_path


def agent_env(base: Mapping[str, str], *, sweep_id: str, run_id: str, wandb_dir: str,
              project: str | None = None, entity: str | None = None) -> dict[str, str]:
    """The program's environment: `base` plus what the agent sets, plus the ``wandb`` shim.

    The agent's part is WANDB_SWEEP_ID, WANDB_RUN_ID, WANDB_DIR,
    WANDB_SWEEP_PARAM_PATH (and WANDB_PROJECT/WANDB_ENTITY when given; it drops
    WANDB_SERVICE).  raysweep's part puts `SHIM_DIR` first on PYTHONPATH and sets
    PYTHONUNBUFFERED=1 unless set, so output streams line by line.  The result
    pipe's descriptor is added by `run_child`.
    """
    env = {k: v for k, v in base.items() if k != "WANDB_SERVICE"}
    env.update(WANDB_SWEEP_ID=sweep_id, WANDB_RUN_ID=run_id, WANDB_DIR=wandb_dir,
               WANDB_SWEEP_PARAM_PATH=param_paths(wandb_dir, sweep_id, run_id)[0])
    env.update({k: v for k, v in (("WANDB_PROJECT", project), ("WANDB_ENTITY", entity)) if v})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SHIM_DIR), base.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass(frozen=True)
class _Launch:
    """Everything a trial needs to start the sweep's program; pickled to the Ray workers."""

    command: tuple[object, ...] | None
    program: str | None
    nesting: dict[str, Any]
    project: str | None
    entity: str | None
    sweep_id: str
    cwd: str
    kill_grace: float
    runs_dir: str | None
    run_timeout: float | None
    echo_to: Any  # the `OutputSink` actor of --verbose, or None
    wandb_dir: str
    report: ReportFn | None
    driver_node: str | None = None
    mark: str | None = None  # the driver's RAYSWEEP_MARK prefix (`raysweep.trial.reaper`)
    carry_every: float | None = None  # run folders carried through Ray's storage (`raysweep.trial.carry`)
    carried: Mapping[str, str] | None = None  # run id → last checkpoint, of runs this driver may restart


class Courier(io.RawIOBase):
    """Carries a run's output to the driver inside Ray results, for a run on another node.

    The run log lives on the driver's machine, out of reach of a worker
    elsewhere: the output pump writes here instead of output.log, and the
    training thread sends what has gathered as ``_raysweep: {"output": ...}``,
    which `RunLogCallback` appends to output.log.  Output rides in a result of
    its own (``history: False``, repeating the last row so the trial's last
    result still holds the metric), after each row and once the program ended.
    """

    def __init__(self, report: ReportFn) -> None:
        super().__init__()
        self._report = report
        self._last: dict[str, Any] = {}
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        with self._lock:
            self._chunks.append(bytes(data))
        return len(data)

    def report(self, row: dict[str, Any] | None, *, summary: dict[str, Any] | None = None) -> None:
        """Report like `launch.report`, then send the output gathered so far."""
        self._report(row, summary=summary)
        if row is not None:
            self._last = {k: v for k, v in row.items() if not k.startswith("_")}
        self.send()

    def send(self) -> None:
        from ray import tune

        from raysweep.protocol import META_KEY

        with self._lock:
            data, self._chunks = b"".join(self._chunks), []
        if data:
            tune.report({**self._last, META_KEY: {"history": False, "output": data.decode("utf-8", "replace")}})


def _node_id() -> str | None:
    """The Ray node this process runs on; None outside Ray."""
    import ray

    if not ray.is_initialized():
        return None
    with suppress(Exception):  # e.g. a Ray Client driver has no node of its own
        return ray.get_runtime_context().get_node_id()
    return None


def program_trainable(spec: SweepSpec, sweep_id: str, cwd: str | os.PathLike[str], kill_grace: float, *,
                      runs_dir: str | os.PathLike[str] | None = None, run_timeout: float | None = None,
                      echo_to: Any = None, wandb_dir: str | None = None,
                      report: ReportFn | None = None, mark: str | None = None,
                      carried: Mapping[str, str] | None = None) -> Callable[[dict[str, Any]], None]:
    """A Ray function trainable that runs `spec`'s program once per trial, like ``wandb agent``.

    `cwd` is the launch directory (paths in the sweep file are relative to it);
    the program's output goes to ``runs_dir/<run id>/output.log``.  WANDB_DIR
    is `wandb_dir`, else the environment's, else `cwd`, as with the agent.
    `report` defaults to `raysweep.trial.session.report_row`; `mark` is the
    driver's mark, which every program it starts carries (its watchdog ends them).
    With `carried` (``--storage``: run id → last checkpoint, for the runs the
    driver may restart) each attempt's ``wandb.run.dir`` is a folder on its
    node, carried to the next attempt through Ray's storage (`raysweep.trial.carry`).
    """
    cwd = os.path.abspath(cwd)
    launch = _Launch(
        command=tuple(spec.command) if spec.command else None, program=spec.program,
        nesting=nesting_of(spec.parameters),
        project=spec.project, entity=spec.entity, sweep_id=sweep_id, cwd=cwd, kill_grace=kill_grace,
        runs_dir=os.path.abspath(runs_dir) if runs_dir else None, run_timeout=run_timeout, echo_to=echo_to,
        wandb_dir=os.path.abspath(wandb_dir or os.environ.get("WANDB_DIR") or cwd), report=report,
        driver_node=_node_id(), mark=mark, carry_every=None if carried is None else persist_every(),
        carried=carried)

    def trainable(config: dict[str, Any]) -> None:
        _run_trial(launch, config)

    return trainable


def side_runs_folder(launch: _Launch, run_id: str, remote: bool) -> str:
    """Where the program's side runs (`raysweep.trial.capture`) go: ``runs/<id>/side-runs`` in the
    run log, or, for a run on another node, next to the agent's files on that node."""
    if launch.runs_dir and not remote:
        return str(Path(launch.runs_dir, run_id, "side-runs"))
    return os.path.join(launch.wandb_dir, "wandb", f"sweep-{launch.sweep_id}", f"side-runs-{run_id}")


def _run_trial(launch: _Launch, config: dict[str, Any]) -> None:
    """One trial: write the agent's files, run the program, report its rows, raise if it failed."""
    from ray import tune

    from raysweep.trial.session import report_row

    run_id = run_id_for(launch.sweep_id, tune.get_context().get_trial_id())
    values = engine_order(plain(config), launch.nesting)
    ids = {"sweep_id": launch.sweep_id, "run_id": run_id, "wandb_dir": launch.wandb_dir}
    write_param_files(launch.command, values, **ids)
    env = agent_env(os.environ, project=launch.project, entity=launch.entity, **ids)
    command = build_command(launch.command, launch.program, values, interpreter=sys.executable,
                            environ=env, **ids)
    report = launch.report or report_row
    remote = launch.runs_dir is not None and launch.driver_node not in (None, _node_id())
    carrier = None
    if launch.carry_every is not None:  # the run log's copy of the run, where this node sees it
        here = Path(launch.runs_dir, run_id) if launch.runs_dir and os.path.isdir(launch.runs_dir) else None
        carrier = Carrier.begin(launch.wandb_dir, here, run_id, report, launch.carry_every,
                                (launch.carried or {}).get(run_id))
        env.update(carrier.attempt.environ())
        report = carrier.report
    env[SIDE_RUNS_ENV] = side_runs_folder(launch, run_id, remote)
    courier = Courier(report) if remote else None
    output = Path(launch.runs_dir, run_id, "output.log") if launch.runs_dir and not remote else courier
    if launch.runs_dir and not remote and carrier is None:  # the run's folder and steps so far are in the run log
        env.update(attempt.begin(Path(launch.runs_dir, run_id)).environ())
    echo = Sender(launch.echo_to, run_id) if launch.echo_to is not None else None
    # A node that did not get the launch directory (a job's working_dir) runs in its own copy.
    cwd = launch.cwd if os.path.isdir(launch.cwd) else os.getcwd()
    try:
        ended = run_child(command, env=env, cwd=cwd, kill_grace=launch.kill_grace,
                          reporter=Reporter(courier.report if courier else report), output=output, echo=echo,
                          timeout=launch.run_timeout, mark=attempt_mark(launch.mark))
    finally:
        if echo is not None:
            echo.flush()
        if carrier is not None:
            carrier.stop()
    if carrier is not None:
        carrier.finish()
    if courier:
        courier.send()
    ended.check()
