"""raysweep's ``wandb`` stand-in against the real ``wandb`` package, and its notebook and pipe plumbing.

The reference runs the real ``wandb`` 0.31 offline in the reference venv: the
history rows it records (its sampled history, with ``_step``) and a script's
view of ``wandb.config``/``wandb.summary`` must be what raysweep's capture gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest

from raysweep.trial import capture, program
from reference import reference_python, run_reference

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"

# (data, step, commit) calls of run.log
SEQUENCES: dict[str, list[tuple[dict[str, Any], int | None, bool | None]]] = {
    "plain": [({"loss": 1.0}, None, None), ({"loss": 0.5}, None, None), ({"loss": 0.25, "acc": 0.9}, None, None)],
    "commit_false": [({"a": 1}, None, False), ({"b": 2}, None, None), ({"a": 3}, None, False),
                     ({"a": 4}, None, False), ({"b": 5}, None, None)],
    "explicit_step": [({"a": 1}, 0, None), ({"b": 2}, 0, None), ({"a": 3}, 1, None), ({"a": 4}, 1, True),
                      ({"a": 5}, None, None)],
    "jumps_and_backwards": [({"x": 1}, None, None), ({"x": 2}, None, False), ({"y": 3}, None, None),
                            ({"x": 4}, 5, None), ({"y": 5}, 5, None), ({"x": 6}, 3, None), ({"x": 7}, None, None),
                            ({"x": 8}, 9, True), ({"x": 9}, None, None)],
    "commit_true": [({"a": 1}, None, True), ({"a": 2}, None, False), ({"a": 3}, None, True)],
    "pending_at_finish": [({"x": 1}, None, None), ({"x": 2, "y": 1}, 3, None), ({"y": 5}, None, False)],
}
REFERENCE_LOG = """
import json, os, sys, tempfile
os.chdir(tempfile.mkdtemp())
import wandb
out = {}
for name, calls in json.load(sys.stdin).items():
    run = wandb.init(mode="offline", reinit="create_new")
    for data, step, commit in calls:
        run.log(data, step=step, commit=commit)
    run.finish()
    history = {item.key: list(item.values_float) or list(item.values_int) for item in run._sampled_history.item}
    out[name] = {k: v for k, v in history.items() if k not in ("_runtime", "_timestamp")}
print(json.dumps(out))
"""


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Capture installed as ``wandb`` in this process, reporting into the returned list."""
    reported: list[tuple[Any, Any]] = []
    monkeypatch.setitem(sys.modules, "wandb", sys.modules.get("wandb", capture))  # restored afterwards
    capture.install_in_process({}, report=lambda row, summary=None: reported.append((row, summary)))
    return reported


@pytest.fixture(scope="module")
def wandb_histories() -> dict[str, dict[str, list[float]]]:
    env_free = {name: [[data, step, commit] for data, step, commit in calls] for name, calls in SEQUENCES.items()}
    return run_reference(REFERENCE_LOG, stdin=json.dumps(env_free))


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_log_step_and_commit_rules_match_wandb(name: str, wandb_histories: dict[str, Any],
                                               in_process: list[tuple[Any, Any]]) -> None:
    run = capture.init()
    for data, step, commit in SEQUENCES[name]:
        run.log(data, step=step, commit=commit)
    run.finish()
    rows = [row for row, _ in in_process]
    keys = {key for row in rows for key in row}
    ours = {key: [float(np.float32(row[key])) for row in rows if key in row] for key in keys}
    assert ours == wandb_histories[name]  # W&B samples its history as float32


def test_config_and_summary_match_wandb_in_a_script(tmp_path: Path) -> None:
    """The same script, once with the real wandb (offline) and once under raysweep: same output, same warnings."""
    (tmp_path / "config-defaults.yaml").write_text("batch:\n  value: 16\nlr:\n  value: 9\nonly_defaults:\n  value: x\n")
    ids = {"sweep_id": "sw1", "run_id": "abc12345", "wandb_dir": str(tmp_path)}
    program.write_param_files(None, {"lr": 0.1, "opt": {"kind": "sgd"}, "flag": False}, **ids)
    env = {**os.environ, **program.agent_env({}, **ids), "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    script = str(PROGRAMS / "config_ops.py")
    real = subprocess.run([reference_python(), script], env={**env, "PYTHONPATH": ""}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=True)
    ours = subprocess.run([sys.executable, script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=True)
    assert json.loads(ours.stdout) == json.loads(real.stdout.splitlines()[-1])
    locked = [line for line in real.stderr.splitlines() if "locked by" in line]
    assert len(locked) == 3
    assert [line for line in ours.stderr.splitlines() if "locked by" in line] == locked


def test_nested_sweep_values_merge_over_defaults_and_lock(in_process: list[Any]) -> None:
    capture.install_in_process({"opt": {"kind": "sgd"}, "lr": 0.1},
                               report=lambda row, summary=None: in_process.append((row, summary)))
    run = capture.init(config={"opt": {"kind": "adam", "mom": 0.9}, "lr": 0.5, "epochs": 2})
    assert dict(capture.config) == {"opt": {"kind": "sgd", "mom": 0.9}, "lr": 0.1, "epochs": 2}
    assert (capture.config.lr, capture.config["opt"]["mom"], run.config is capture.config) == (0.1, 0.9, True)
    capture.config.update({"lr": 1.0})
    capture.config.lr = 2.0
    assert capture.config.lr == 0.1
    with pytest.raises(AttributeError):
        _ = capture.config.missing


def test_summary_updates_ride_with_the_next_row(in_process: list[Any]) -> None:
    with capture.init() as run:
        capture.log({"loss": 1.0})
        capture.summary["best"] = 1.0
        run.summary.update({"best": 0.5, "note": "x"})
        capture.log({"loss": 0.5})
        capture.summary.best = 0.25
    assert in_process == [({"loss": 1.0, "_step": 0}, None), ({"loss": 0.5, "_step": 1}, {"best": 0.5, "note": "x"}),
                          (None, {"best": 0.25})]
    assert (run.summary["loss"], run.summary["best"], capture.run) == (0.5, 0.25, None)


def test_numpy_values_are_plain_and_media_is_dropped(in_process: list[Any]) -> None:
    capture.init()
    capture.log({"loss": np.float32(0.5), "n": np.int64(3), "arr": np.arange(3), "img": capture.Image(None),
                 "table": capture.Table(columns=["a"]), "nested": {"x": np.float64(1.5), "plot": capture.plot}})
    capture.finish()
    row = in_process[0][0]
    assert row == {"loss": 0.5, "n": 3, "arr": [0, 1, 2], "nested": {"x": 1.5}, "_step": 0}
    assert [type(v) for v in (row["loss"], row["n"])] == [float, int]


def test_context_manager_finishes_on_error_and_keeps_the_pending_row(in_process: list[Any]) -> None:
    with pytest.raises(RuntimeError, match="boom"), capture.init():
        capture.log({"a": 1}, commit=False)
        raise RuntimeError("boom")
    assert in_process == [({"a": 1, "_step": 0}, None)]


def test_init_returns_the_active_run_and_a_later_run_continues_the_history(in_process: list[Any]) -> None:
    assert capture.run is None
    first = capture.init(project="p", name="n", tags=["t"], mode="online", reinit=True)
    assert capture.init() is first and capture.run is first
    capture.log({"a": 1})
    first.finish()
    second = capture.init()
    assert second is not first
    second.log({"a": 2})
    second.finish()
    assert [row["_step"] for row, _ in in_process] == [0, 1]
    with pytest.raises(capture.Error, match=r"call wandb.init\(\) before wandb.log"):
        capture.log({"a": 3})


def test_noops_and_placeholders_do_nothing(in_process: list[Any], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # run.dir is created under ./wandb
    run = capture.init()
    for name in sorted(capture.NOOPS):
        assert getattr(capture, name)("x", key=1) is None
    for name in ("watch", "save", "alert", "log_artifact", "use_artifact", "log_code"):
        assert getattr(run, name)("x") is None
    table = capture.Table(columns=["a"], data=[[1]])
    assert table.add_data(2) is None
    assert capture.plot.line(table, "a", "b") is None
    assert capture.Artifact("name", type="model").add_file("x") is None
    assert run.define_metric("val_loss", summary="min") is None and capture.define_metric("acc") is None
    assert Path(run.dir).is_dir() and Path(run.dir).is_relative_to(tmp_path)
    with pytest.raises(AttributeError, match="wandb.Api is not available under raysweep: .*raysweep.load"):
        _ = capture.Api
    with pytest.raises(AttributeError, match="no Run.history"):
        _ = run.history


def test_notebook_function_pickled_with_wandb_runs_on_the_capture(monkeypatch: pytest.MonkeyPatch,
                                                                   in_process: list[Any]) -> None:
    """cloudpickle refers to ``wandb`` by name: installed first, a W&B ``train`` lands on the capture."""
    real = types.ModuleType("wandb")  # stands for the real package on the driver
    monkeypatch.setitem(sys.modules, "wandb", real)
    namespace: dict[str, Any] = {"wandb": real, "__name__": "__main__"}
    exec("def train():\n    with wandb.init(config={'lr': 0.5}):\n        wandb.log({'lr_seen': wandb.config.lr})\n",
         namespace)
    payload = cloudpickle.dumps(namespace["train"])
    reported: list[Any] = []
    capture.install_in_process({"lr": 0.1}, run_id="r1",
                               report=lambda row, summary=None: reported.append((row, summary)))
    cloudpickle.loads(payload)()
    assert sys.modules["wandb"] is capture
    assert reported == [({"lr_seen": 0.1, "_step": 0}, None)]


def test_reporter_sends_leftover_summary_on_close() -> None:
    calls: list[Any] = []
    reporter = capture.Reporter(lambda row, summary=None: calls.append((row, summary)))
    reporter.summary({"a": 1})
    reporter.summary({"a": 2, "b": 3})
    reporter.close()
    reporter.close()
    reporter.row({"x": 1})
    assert calls == [(None, {"a": 2, "b": 3}), ({"x": 1}, None)]


def test_reporter_goes_quiet_once_ray_stops_the_trial(in_process: list[Any]) -> None:
    """After report raised SystemExit, ``with wandb.init()`` unwinding must not report (it would block)."""
    calls: list[Any] = []

    def report(row: Any, summary: Any = None) -> None:
        calls.append((row, summary))
        if len(calls) == 2:
            raise SystemExit(0)

    capture.install_in_process({}, report=report)
    with pytest.raises(SystemExit), capture.init():
        for step in range(5):
            capture.summary["best"] = step
            capture.log({"step": step})
    assert calls == [({"step": 0, "_step": 0}, {"best": 0}), ({"step": 1, "_step": 1}, {"best": 1})]


def test_shim_makes_no_network_call_and_needs_no_raysweep_on_the_path(tmp_path: Path) -> None:
    script = """
import socket, sys
def refuse(*args, **kwargs):
    raise AssertionError("network used")
socket.socket = socket.create_connection = socket.getaddrinfo = refuse
import wandb
wandb.login(key="x")
run = wandb.init(project="p", entity="e", config={"a": 1})
wandb.watch(object(), log="all")
wandb.log({"loss": 0.5, "img": wandb.Image([0])})
wandb.summary["best"] = 0.5
wandb.save("*.pt")
wandb.alert(title="t", text="x")
run.log_artifact(wandb.Artifact("m", type="model"))
wandb.finish()
print(wandb.__name__, "ray" in sys.modules, "raysweep" in sys.modules)
"""
    env = {**os.environ, "PYTHONPATH": str(program.SHIM_DIR)}
    done = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                           "exec(sys.argv[2])", str(program.SHIM_DIR), script],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["raysweep.trial.capture", "False", "False"]


# --- W&B's run API, name by name: the README's table against wandb 0.31 and against the stand-in ------

README = Path(__file__).resolve().parents[2] / "README.md"


def api_table() -> dict[str, str]:
    """name (``wandb.x`` / ``Run.x``) -> supported / no-op / error, from the README's table."""
    text = README.read_text().split("### W&B's run API, name by name", 1)[1].split("\n## ", 1)[0]
    table: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[1] in ("supported", "no-op", "error"):
            for name in cells[0].split(", "):
                table[name.strip("`").removesuffix("()")] = cells[1]
    return table


def test_the_api_table_names_every_public_name_of_wandb_0_31() -> None:
    names = run_reference("""
        import json, warnings
        warnings.simplefilter("ignore")
        import wandb
        from wandb.sdk.wandb_run import Run
        print(json.dumps([f"wandb.{n}" for n in wandb.__all__]
                         + [f"Run.{n}" for n in dir(Run) if not n.startswith("_")]))
    """)
    assert set(names) - set(api_table()) == set()


def test_the_stand_in_does_what_the_api_table_says(in_process: list[Any]) -> None:
    run = capture.init(settings=capture.Settings(run_name="x"))
    for name, kind in api_table().items():
        owner, attr = name.split(".", 1)
        target: Any = capture if owner == "wandb" else run
        if kind == "error":
            with pytest.raises(AttributeError, match="not available under raysweep"):
                getattr(target, attr)
            continue
        value = getattr(target, attr)
        if isinstance(value, capture._Placeholder):
            assert kind == "no-op" and value.anything() is None, name  # wandb.plot: a module in W&B
        elif kind == "no-op":
            assert callable(value), name
            assert value() in (None, False, "") or isinstance(value(), capture._Placeholder), name
        else:
            assert value is not capture._noop and not isinstance(value, capture._Placeholder), name
    assert (run.get_sweep_url(), run.get_project_url(), run.get_url(), run.url) == (None, None, None, None)
    assert run.path == f"/uncategorized/{run.id}" and run.project_name() == "uncategorized"
    assert run.settings.run_name == "x" and run.resumed is False and run.start_time > 0
    run.name, run.notes, run.tags = "n", "notes", ["a"]
    assert (run.name, run.notes, run.tags) == ("n", "notes", ["a"])
    capture.join()
    assert capture.run is None


def test_init_takes_an_argparse_namespace_and_reinit_finishes_the_previous_run(in_process: list[Any]) -> None:
    import argparse

    first = capture.init(config=argparse.Namespace(lr=0.1, layers=2))
    assert dict(capture.config) == {"lr": 0.1, "layers": 2}
    capture.log({"a": 1})
    second = capture.init(reinit=True)
    assert second is not first and first._finished and capture.run is second
    capture.log({"a": 2})
    capture.finish()
    assert [row["_step"] for row, _ in in_process if row] == [0, 1]
