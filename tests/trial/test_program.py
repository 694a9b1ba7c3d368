"""Program mode: command lines, environment and files as W&B's agent makes them; processes and faults.

The reference is the ``wandb`` package itself (``Agent._command_run`` with its
process launch swapped for a recorder, ``sweeps.next_run`` for key order), run
in the reference venv.  Process tests start real programs from tests/programs/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from raysweep.trial import child, program
from raysweep.trial.capture import Reporter
from raysweep.errors import ProgramError
from raysweep.names import run_id_for
from raysweep.spec.load import load_spec
from reference import run_reference

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
HOSTILE = "; rm -rf / # $(touch PWNED) `touch PWNED` && echo x | cat > out < in 'q' \"qq\" \\ *"

CONFIGS = {
    "int": {"epochs": 10, "neg": -3, "zero": 0},
    "float": {"lr": 0.0107, "half": 0.5, "whole": 2.0},
    "scientific": {"wd": 1e-05, "big": 1e20, "tiny": 1.5e-300, "neg": -2.5e-07},
    "bool": {"flag": False, "on": True},
    "none": {"x": None},
    "str_spaces": {"name": "hello world", "quoted": "it's \"q\"", "empty": ""},
    "list": {"sched": [1, 2, 3], "mixed": [1, "a b", None, 0.5, True], "empty": []},
    "nested": {"opt": {"lr": 0.1, "name": "adam", "betas": [0.9, 0.99], "deep": {"a": None}}},
    "hostile": {"shell": HOSTILE, "newlines": "line1\nline2\r\n\ttab", "unicode": "héllo ✓ 日本 🙂",
                "dollar": "${args} ${envvar:HOME}"},
    "long": {"big": "x" * 100_000},
    "mixed": {"b": True, "a": 1, "c": "s", "d": [0.1], "e": {"k": "v"}},
}
COMMANDS = {
    "default": None,
    "every_macro": ["${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}",
                    "${args_no_equals}", "${args_no_boolean_flags}", "${args_append_hydra}",
                    "${args_override_hydra}", "${args_json}", "${args_json_file}"],
    "envvar_and_literals": ["${envvar:RAYSWEEP_TEST_VAR}", "--x=${envvar:RAYSWEEP_UNSET_VAR}",
                            "${program}", "--${args}", "${args}", 3, True, "${env}/x"],
}
CASES = [(f"{c}-{m}", CONFIGS[c], COMMANDS[m]) for c in CONFIGS for m in COMMANDS
         if c != "long" or m == "every_macro"]

# Runs W&B's own `_command_run` for each case, with AgentProcess replaced by a recorder.
AGENT_SNIPPET = """
import json, os, sys, tempfile
import wandb.wandb_agent as wa
cases = json.load(sys.stdin)
baseline = dict(os.environ)
recorded = {}
class Recorder:
    def __init__(self, command=None, env=None, **_):
        recorded.update(command=command, env=env)
wa.AgentProcess = Recorder
out = []
for case in cases:
    os.environ.clear(); os.environ.update(baseline)
    # what `wandb agent` itself sets before a run (run_agent and Agent.__init__)
    os.environ.update(WANDB_SWEEP_ID=case["sweep_id"], WANDB_DIR=case["wandb_dir"], RAYSWEEP_TEST_VAR="/opt/py")
    agent = wa.Agent.__new__(wa.Agent)
    agent._sweep_command, agent._function, agent._in_jupyter = case["command"], None, False
    agent._run_processes, agent._last_report_time, agent._forward_signals = {}, None, False
    agent._command_run({"type": "run", "run_id": case["run_id"], "program": "train.py",
                        "args": {k: {"value": v} for k, v in case["config"].items()}})
    base = os.path.join(case["wandb_dir"], "wandb", "sweep-" + case["sweep_id"], "config-" + case["run_id"])
    read = lambda p: open(p).read() if os.path.exists(p) else None
    env = recorded["env"]
    out.append({"command": recorded["command"], "yaml": read(base + ".yaml"), "json": read(base + ".json"),
                "env": {k: v for k, v in env.items() if k.startswith("WANDB_") and baseline.get(k) != v}})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def agent_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """W&B's agent's command, changed env and written files for every case (one reference process)."""
    base = tmp_path_factory.mktemp("agent")
    cases = [{"config": config, "command": command, "sweep_id": "sw3ep1d", "run_id": f"run{i:05d}",
              "wandb_dir": str(base / f"ref{i}")} for i, (_, config, command) in enumerate(CASES)]
    results = run_reference_stdin(AGENT_SNIPPET, cases)
    return {name: (case, result) for (name, _, _), case, result in zip(CASES, cases, results, strict=True)}


def run_reference_stdin(code: str, data: Any) -> Any:
    """`run_reference` with `data` as JSON on stdin (a 100 kB value does not fit in one argv item)."""
    return run_reference(code, stdin=json.dumps(data))


@pytest.mark.parametrize("name", [name for name, _, _ in CASES])
def test_command_env_and_files_match_wandb_agent(name: str, agent_reference: dict[str, Any],
                                                  tmp_path: Path) -> None:
    case, expected = agent_reference[name]
    ids = {"sweep_id": case["sweep_id"], "run_id": case["run_id"], "wandb_dir": case["wandb_dir"]}
    argv = program.build_command(case["command"], "train.py", case["config"], interpreter="python",
                                 environ={"RAYSWEEP_TEST_VAR": "/opt/py"}, **ids)
    assert argv == expected["command"]
    for path in program.param_paths(case["wandb_dir"], case["sweep_id"], case["run_id"]):
        Path(path).unlink(missing_ok=True)  # the agent wrote them here: now raysweep writes them alone
    program.write_param_files(case["command"], case["config"], **ids)
    yaml_path, json_path = program.param_paths(case["wandb_dir"], case["sweep_id"], case["run_id"])
    assert Path(yaml_path).read_text() == expected["yaml"]
    assert (Path(json_path).read_text() if Path(json_path).exists() else None) == expected["json"]
    env = program.agent_env({}, **ids)
    assert {k: v for k, v in env.items() if k.startswith("WANDB_")} == expected["env"]


def test_build_command_refuses_what_the_agent_would_drop_or_break() -> None:
    ids = {"interpreter": "python", "sweep_id": "s", "run_id": "r", "wandb_dir": "/w"}
    with pytest.raises(ProgramError, match=r"unknown macro '\$\{args_dict\}'"):
        program.build_command(["${args_dict}"], "train.py", {"a": 1}, **ids)
    with pytest.raises(ProgramError, match="needs a `program:` key"):
        program.build_command(None, None, {"a": 1}, **ids)


def test_engine_order_matches_sweeps_next_run() -> None:
    parameters = {
        "z": {"values": [1]}, "a": {"min": 0.0, "max": 1.0}, "Bx": {"value": 1}, "a.b": {"value": 3},
        "c": {"value": {"zz": 1, "aa": 2}}, "opt2": {"parameters": {"x": {"value": 1}}},
        "opt": {"parameters": {"lr": {"values": [0.1]}, "b": {"value": 2}, "c": {"value": {"y": 1, "b": 2}},
                               "sub": {"parameters": {"q": {"value": 1}, "p": {"value": 2}}}, "zz": {"value": 0}}},
        "a-b": {"parameters": {"k": {"value": 1}}},
    }
    expected = run_reference(f"""
        import json, sweeps
        run = sweeps.next_run({{"method": "random", "parameters": {parameters!r}}}, [])
        print(json.dumps([[k, v["value"]] for k, v in run.config.items()]))
    """)
    engine = dict(expected)
    scrambled = {k: engine[k] for k in reversed(list(engine))}
    scrambled["opt"] = {k: engine["opt"][k] for k in reversed(list(engine["opt"]))}
    nesting = program.nesting_of(load_spec({"method": "random", "parameters": parameters}).parameters)
    assert nesting == {"opt": {"sub": {}}, "opt2": {}, "a-b": {}}
    ordered = program.engine_order(scrambled, nesting)
    assert json.dumps(list(ordered.items())) == json.dumps(expected)


# --- real processes, no Ray -------------------------------------------------------------------------


def _launch(tmp_path: Path, script: str, config: dict[str, Any], *, command: list[object] | None = None,
            base_env: dict[str, str] | None = None, **kwargs: Any) -> tuple[child.ChildExit, list[Any]]:
    """Run `script` as a sweep run would run, outside Ray; return how it ended and what it reported."""
    ids = {"sweep_id": "sweep1", "run_id": "run1", "wandb_dir": str(tmp_path)}
    program.write_param_files(command, config, **ids)
    env = program.agent_env({**os.environ, **(base_env or {})}, **ids)
    argv = program.build_command(command, str(PROGRAMS / script), config, interpreter=sys.executable,
                                 environ=env, **ids)
    reported: list[Any] = []
    ended = child.run_child(argv, env=env, cwd=str(tmp_path), kill_grace=kwargs.pop("kill_grace", 1.0),
                              reporter=Reporter(lambda row, summary=None: reported.append((row, summary))),
                              **kwargs)
    return ended, reported


@pytest.mark.parametrize("config", ["mixed", "nested", "hostile", "long", "list"])
@pytest.mark.parametrize("command", ["default", "every_macro"])
def test_program_receives_values_byte_for_byte(config: str, command: str, tmp_path: Path) -> None:
    values = CONFIGS[config]
    out = tmp_path / "echo.json"
    ended, reported = _launch(tmp_path, "echo_args.py", values, command=COMMANDS[command],
                              base_env={"ECHO_OUT": str(out)})
    assert (ended.status, ended.messages) == (0, 1), ended.tail
    seen = json.loads(out.read_text())
    expected = program.build_command(COMMANDS[command], str(PROGRAMS / "echo_args.py"), values,
                                     interpreter=sys.executable, sweep_id="sweep1", run_id="run1",
                                     wandb_dir=str(tmp_path))
    python_index = expected.index(sys.executable)
    assert seen["argv"] == expected[python_index + 2:]  # after the interpreter and the script
    assert seen["config"] == values  # wandb.config has the types the sweep gave, not argv strings
    assert (seen["cwd"], seen["stdin"], seen["run_id"]) == (str(tmp_path), "", "run1")
    assert seen["wandb_module"] == "raysweep.trial.capture"
    assert seen["env"]["WANDB_SWEEP_PARAM_PATH"] == program.param_paths(str(tmp_path), "sweep1", "run1")[0]
    assert seen["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(program.SHIM_DIR)
    assert "RAYSWEEP_RESULT_FD" not in seen["env"]  # taken out so the program's children cannot misuse it
    assert seen["param_yaml"] == Path(seen["env"]["WANDB_SWEEP_PARAM_PATH"]).read_text()
    assert (seen["args_json"] is not None) == (command == "every_macro")
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
    assert reported == [({"ok": 1, "_step": 0}, None)]


def test_tutorial_script_rows_arrive_in_order_with_summary(tmp_path: Path) -> None:
    output = tmp_path / "runs" / "run1" / "output.log"
    echoed: list[str] = []
    ended, reported = _launch(tmp_path, "tutorial.py", {"lr": 0.5, "epochs": 4}, output=output,
                              echo=echoed.append)
    ended.check()
    losses = [1.0 / (1.0 + 0.5 * (e + 1)) for e in range(4)]
    assert reported == [({"loss": loss, "epoch": e, "_step": e}, None) for e, loss in enumerate(losses)] + [
        (None, {"best_loss": losses[-1]})]
    lines = [f"epoch {e} loss {loss:.4f}" for e, loss in enumerate(losses)]
    assert output.read_text().splitlines() == lines
    assert [line.rstrip("\n") for line in echoed] == lines
    assert ended.tail == tuple(lines)


def test_tutorial_script_with_the_real_wandb_installed(tmp_path: Path) -> None:
    """The shim comes first on PYTHONPATH, so the real package (after it) is never imported."""
    real = run_reference("""
        import importlib.util, json, os
        print(json.dumps(os.path.dirname(importlib.util.find_spec("wandb").origin)))
    """)
    site = tmp_path / "site"
    site.mkdir()
    (site / "wandb").symlink_to(real)
    find = "import importlib.util; print(importlib.util.find_spec('wandb').origin)"
    probe = subprocess.run([sys.executable, "-c", find], env={**os.environ, "PYTHONPATH": str(site)},
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == str(site / "wandb" / "__init__.py")  # without the shim: the real one
    ended, reported = _launch(tmp_path, "tutorial.py", {"epochs": 3}, base_env={"PYTHONPATH": str(site)})
    ended.check()
    assert [row["_step"] for row, _ in reported if row] == [0, 1, 2]
    assert reported[-1][1] is not None and "best_loss" in reported[-1][1]


def test_digits_example_runs_unchanged_as_a_program(tmp_path: Path) -> None:
    """configs/program_digits.yaml with its W&B-tutorial-style script, launched from the repository root."""
    repo = Path(__file__).resolve().parents[2]
    spec = load_spec(repo / "configs" / "program_digits.yaml")
    values = {"learning_rate": 0.3, "hidden": 32, "batch_size": 64, "weight_decay": 1e-4, "epochs": 27}
    ids = {"sweep_id": "digits", "run_id": "run1", "wandb_dir": str(tmp_path)}
    program.write_param_files(spec.command, values, **ids)
    env = program.agent_env(os.environ, **ids)
    argv = program.build_command(spec.command, spec.program, program.engine_order(values), interpreter=sys.executable,
                                 environ=env, **ids)
    assert argv[2:4] == ["configs/programs/train_digits.py", "--val_fraction=0.25"]
    reported: list[Any] = []
    ended = child.run_child(argv, env=env, cwd=str(repo), kill_grace=1.0,
                              reporter=Reporter(lambda row, summary=None: reported.append((row, summary))))
    ended.check()
    rows = [row for row, _ in reported if row]
    assert [row["epoch"] for row in rows] == list(range(27))
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] and rows[-1]["val_acc"] > 0.9
    assert reported[-1] == (None, {"best_val_acc": max(row["val_acc"] for row in rows)})


@pytest.mark.parametrize(("mode", "status", "state", "last_line"), [
    ("crash", 1, "failed", "RuntimeError: boom"),
    ("exit3", 3, "failed", "mode exit3"),
    ("abort", -signal.SIGABRT, "crashed", "mode abort"),
    ("segfault", -signal.SIGSEGV, "crashed", "mode segfault"),
], ids=["exception", "exit_code", "abort", "segfault"])
def test_failing_programs_raise_with_exit_code_and_tail(mode: str, status: int, state: str, last_line: str,
                                                        tmp_path: Path) -> None:
    ended, reported = _launch(tmp_path, "faulty.py", {"mode": mode})
    assert ended.status == status
    assert reported == [({"loss": 1.0, "_step": 0}, None)]
    with pytest.raises(child.ProgramFailed) as failure:
        ended.check()
    assert (failure.value.exit_code, failure.value.state) == (status, state)
    assert failure.value.tail[-1] == last_line
    assert f"exit code {status}" in str(failure.value) or f"exited with code {status}" in str(failure.value)
    assert last_line in str(failure.value)


def test_silent_program_is_its_own_error(tmp_path: Path) -> None:
    ended, reported = _launch(tmp_path, "faulty.py", {"mode": "silent"})
    assert (ended.status, ended.messages, reported) == (0, 0, [])
    with pytest.raises(child.ProgramSilent, match="never called wandb.log") as failure:
        ended.check()
    assert "training without logging" in str(failure.value)


def test_missing_executable_is_reported_like_a_shell(tmp_path: Path) -> None:
    ended, _ = _launch(tmp_path, "tutorial.py", {}, command=["/nonexistent/python", "${program}"])
    assert ended.status == 127
    assert "cannot start" in ended.tail[-1] and "/nonexistent/python" in ended.tail[-1]


def _pids(pidfile: Path) -> list[int]:
    return [int(line) for line in pidfile.read_text().split()] if pidfile.exists() else []


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_run_timeout_kills_a_hanging_program(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    ended, reported = _launch(tmp_path, "faulty.py", {"mode": "hang"}, timeout=1.0,
                              base_env={"RAYSWEEP_TEST_PIDFILE": str(pidfile)})
    assert (ended.timed_out, ended.status, len(reported)) == (1.0, -signal.SIGTERM, 1)
    assert _wait_for(lambda: not any(map(_alive, _pids(pidfile))), timeout=2)  # SIGKILLed, maybe still exiting
    with pytest.raises(child.ProgramFailed, match=r"timed out after 1 s and was killed \(exit code -15\)"):
        ended.check()


def test_program_killed_from_outside_is_a_signal_exit(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"

    def kill_when_started() -> None:
        _wait_for(lambda: _pids(pidfile))
        time.sleep(0.3)
        os.kill(_pids(pidfile)[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    ended, _ = _launch(tmp_path, "faulty.py", {"mode": "hang"}, base_env={"RAYSWEEP_TEST_PIDFILE": str(pidfile)})
    killer.join()
    assert ended.status == -signal.SIGKILL
    with pytest.raises(child.ProgramFailed, match="killed by signal SIGKILL"):
        ended.check()


class _Stop(Exception):
    """What the reporter raises to stop the run, as Ray's report raises SystemExit."""


@pytest.mark.parametrize("mode", ["stubborn", "spawn"], ids=["ignores_sigterm", "leaves_a_child"])
def test_stopping_a_run_leaves_no_process(mode: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    rows: list[Any] = []

    def report(row: Any, summary: Any = None) -> None:
        rows.append(row)
        if len(rows) == 3:
            raise _Stop

    ids = {"sweep_id": "s", "run_id": "r", "wandb_dir": str(tmp_path)}
    program.write_param_files(None, {"mode": mode}, **ids)
    env = program.agent_env({**os.environ, "RAYSWEEP_TEST_PIDFILE": str(pidfile)}, **ids)
    argv = program.build_command(None, str(PROGRAMS / "faulty.py"), {"mode": mode}, interpreter=sys.executable,
                                 environ=env, **ids)
    with pytest.raises(_Stop):
        child.run_child(argv, env=env, cwd=str(tmp_path), kill_grace=1.0, reporter=Reporter(report))
    pids = _pids(pidfile)
    assert len(pids) == (2 if mode == "spawn" else 1)
    assert _wait_for(lambda: not any(map(_alive, pids)), timeout=2)


def test_program_dies_with_its_trial_process(tmp_path: Path) -> None:
    """A trial process killed with SIGKILL (a worker lost) cannot leave its program running."""
    pidfile = tmp_path / "pids"
    trial = f"""
import os, sys
from raysweep.trial import child, program
from raysweep.trial.capture import Reporter
ids = dict(sweep_id="s", run_id="r", wandb_dir={str(tmp_path)!r})
program.write_param_files(None, {{"mode": "stubborn"}}, **ids)
env = program.agent_env({{**os.environ, "RAYSWEEP_TEST_PIDFILE": {str(pidfile)!r}}}, **ids)
argv = program.build_command(None, {str(PROGRAMS / "faulty.py")!r}, {{"mode": "stubborn"}},
                             interpreter=sys.executable, environ=env, **ids)
child.run_child(argv, env=env, cwd={str(tmp_path)!r}, kill_grace=0.5, reporter=Reporter(lambda *a, **k: None))
"""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", trial], cwd=repo, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: _pids(pidfile))
    program_pid = _pids(pidfile)[0]
    assert _alive(program_pid)
    proc.kill()
    proc.wait()
    assert _wait_for(lambda: not _alive(program_pid), timeout=5)


# --- through Ray ------------------------------------------------------------------------------------


def _tuner(tmp_path: Path, script: str, param_space: dict[str, Any], *, reuse_actors: bool = True,
           stop: Any = None, kill_grace: float = 1.0, callbacks: list[Any] | None = None) -> Any:
    from ray import tune

    spec = load_spec({"method": "grid", "program": str(PROGRAMS / script), "metric": {"name": "loss"},
                      "parameters": {k: {"value": 0} for k in param_space}})
    trainable = program.program_trainable(spec, "sweepabc", tmp_path, kill_grace, runs_dir=tmp_path / "runs")
    return tune.Tuner(trainable, param_space=param_space,
                      tune_config=tune.TuneConfig(num_samples=1, reuse_actors=reuse_actors),
                      run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0, stop=stop,
                                                callbacks=callbacks))


@pytest.fixture
def tune_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")


@pytest.mark.integration
def test_ray_trial_reports_each_logged_row_in_order(ray_session: None, tune_env: None, tmp_path: Path) -> None:
    from ray import tune

    class Recorder(tune.Callback):
        def __init__(self) -> None:
            self.results: list[dict[str, Any]] = []

        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                            **info: Any) -> None:
            self.results.append(result)

    recorder = Recorder()
    results = _tuner(tmp_path, "tutorial.py", {"lr": 0.5, "epochs": 4}, callbacks=[recorder]).fit()
    assert results.num_errors == 0
    rows = [r for r in recorder.results if r.get("_raysweep", {}).get("history", True)]
    assert [r["_step"] for r in rows] == [0, 1, 2, 3]
    assert [r["loss"] for r in rows] == [1.0 / (1.0 + 0.5 * (e + 1)) for e in range(4)]
    assert [r["training_iteration"] for r in recorder.results] == [1, 2, 3, 4, 5]
    assert recorder.results[-1]["_raysweep"] == {"history": False, "summary": {"best_loss": rows[-1]["loss"]}}
    run_id = run_id_for("sweepabc", rows[0]["trial_id"])
    assert (tmp_path / "runs" / run_id / "output.log").read_text().splitlines()[0] == "epoch 0 loss 0.6667"
    assert (tmp_path / "wandb" / "sweep-sweepabc" / f"config-{run_id}.yaml").exists()


@pytest.mark.integration
def test_ray_trials_of_failing_programs_error_with_exit_code_and_tail(ray_session: None, tune_env: None,
                                                                      tmp_path: Path) -> None:
    from ray import tune

    results = _tuner(tmp_path, "faulty.py", {"mode": tune.grid_search(["crash", "abort", "silent"])}).fit()
    errors = {result.config["mode"]: str(result.error) for result in results}
    assert "program exited with code 1" in errors["crash"] and "RuntimeError: boom" in errors["crash"]
    assert "killed by signal SIGABRT (exit code -6)" in errors["abort"] and "mode abort" in errors["abort"]
    assert "never called wandb.log" in errors["silent"] and "training without logging" in errors["silent"]


class _StopAtTwo:
    """A Ray Stopper ending every trial at its second result."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return result["training_iteration"] >= 2

    def stop_all(self) -> bool:
        return False


@pytest.mark.integration
@pytest.mark.parametrize("reuse_actors", [True, False], ids=["reuse_actors", "fresh_actors"])
def test_ray_stopped_trial_leaves_no_process(reuse_actors: bool, ray_session: None, tune_env: None,
                                             tmp_path: Path) -> None:
    from ray import tune

    pidfile = tmp_path / "pids"
    stopper = type("StopAtTwo", (_StopAtTwo, tune.Stopper), {})()
    results = _tuner(tmp_path, "faulty.py", {"mode": "stubborn", "pidfile": str(pidfile)},
                     reuse_actors=reuse_actors, stop=stopper).fit()
    assert results.num_errors == 0
    assert results[0].metrics["training_iteration"] == 2
    pids = _pids(pidfile)
    assert len(pids) == 1
    assert _wait_for(lambda: not _alive(pids[0]), timeout=5)  # SIGTERM is ignored: SIGKILL after 1 s grace


# --- scripts that start processes of their own ------------------------------------------------------


def test_an_exception_while_workers_block_ends_the_program(tmp_path: Path) -> None:
    """The traceback, the logged rows (the pending one too), exit code 1: no hang on the blocked worker."""
    started = time.monotonic()
    ended, reported = _launch(tmp_path, "workers.py", {"mode": "raise_with_blocked_worker"}, timeout=60)
    assert ended.timed_out is None and ended.status == 1
    assert time.monotonic() - started < 30
    assert [row for row, _ in reported] == [{"loss": 1.0, "_step": 0}, {"loss": 0.5, "_step": 1}]
    assert any("the script fails while its worker waits" in line for line in ended.tail)


def test_a_forked_child_without_init_does_not_touch_the_sweep_run(tmp_path: Path) -> None:
    ended, reported = _launch(tmp_path, "workers.py", {"mode": "fork_without_init"})
    ended.check()
    # The parent's pending row (loss 0.5) is updated by its next log, as W&B does; the child adds nothing.
    assert [row for row, _ in reported] == [{"loss": 1.0, "_step": 0}, {"loss": 0.25, "_step": 1}]
    assert all(summary is None for _, summary in reported)


def _folds_as_side_runs(tmp_path: Path, mode: str) -> Path:
    """Run workers.py in `mode`; the sweep run gets only the folds' mean; the side-runs folder."""
    side = tmp_path / "side-runs"
    ended, reported = _launch(tmp_path, "workers.py", {"mode": mode},
                              base_env={"RAYSWEEP_SIDE_RUNS": str(side)})
    ended.check()
    assert [row for row, _ in reported] == [{"val_accuracy": 1.5, "_step": 0}]
    return side


def test_spawned_workers_runs_are_side_runs(tmp_path: Path) -> None:
    side = _folds_as_side_runs(tmp_path, "spawned_folds")
    assert sorted(p.name for p in side.iterdir()) == ["spawned-0", "spawned-1"]
    for fold in (0, 1):
        summary = json.loads((side / f"spawned-{fold}" / "wandb-summary.json").read_text())
        assert summary["val_accuracy"] == fold + 1.0


def test_runs_started_after_removing_the_agents_variables_are_side_runs(tmp_path: Path) -> None:
    side = _folds_as_side_runs(tmp_path, "sequential_folds")
    assert sorted(p.name for p in side.iterdir()) == ["fold-0", "fold-1"]
    for fold in (0, 1):
        [row] = [json.loads(line) for line in (side / f"fold-{fold}" / "wandb-history.jsonl").read_text().splitlines()]
        assert row["val_accuracy"] == fold + 1.0
        assert json.loads((side / f"fold-{fold}" / "wandb-summary.json").read_text())["val_accuracy"] == fold + 1.0
        assert f"fold:\n  desc: null\n  value: {fold}" in (side / f"fold-{fold}" / "config.yaml").read_text()
