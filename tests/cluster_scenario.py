"""A multi-node sweep on a `ray.cluster_utils.Cluster`, run in a process of its own.

`tests/test_cluster.py` starts ``python cluster_scenario.py scenario OUT``: it
builds a cluster of a CPU-less head and two worker nodes with one simulated
GPU each (each node on its own loopback address, so the run log's ``node_ip``
tells them apart), runs a program-mode sweep against it with
``gpus_per_trial=0.5``, removes one worker node while a run is on it, and
prints one JSON report as its last line.  Its own Ray, in its own process:
the test session's shared Ray is never touched.

``python cluster_scenario.py probe --x=...`` is the sweep's program: it prints
the ``CUDA_VISIBLE_DEVICES`` it inherited, logs a few rows and records when
it ran, so the test can check the packing per node.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORKERS = ("127.0.0.2", "127.0.0.3")  # the node that is removed mid-sweep is the last
EPOCHS, STEP_S, RUNS = 4, 0.5, 8
HEALTH_CHECKS = {"health_check_period_ms": 500, "health_check_timeout_ms": 1000,
                 "health_check_failure_threshold": 3}  # a lost node is noticed in seconds


def probe(argv: list[str]) -> None:
    """The sweep's program: what a GPU training script would see and do, without a GPU."""
    import wandb

    x = float(next(arg for arg in argv if arg.startswith("--x=")).split("=", 1)[1])
    started, cuda = time.time(), os.environ.get("CUDA_VISIBLE_DEVICES")
    print(f"probe start CUDA_VISIBLE_DEVICES={cuda}", flush=True)
    run = wandb.init()
    for epoch in range(EPOCHS):
        time.sleep(STEP_S)
        run.log({"loss": (x - 0.5) ** 2 + 1.0 / (epoch + 1), "epoch": epoch})
        print(f"probe epoch {epoch}", flush=True)
    wandb.summary["started"], wandb.summary["ended"], wandb.summary["cuda"] = started, time.time(), cuda


def _running_with_output(log: Path, ip: str) -> tuple[bool, list[str]]:
    """Whether a run has finished on node `ip`; runs there with output at the driver and epochs to go."""
    finished, running = False, []
    for path in (log / "runs").glob("*/wandb-metadata.json"):
        try:
            meta = json.loads(path.read_text())
            rows = (path.parent / "wandb-history.jsonl").read_text().count("\n")
            shipped = (path.parent / "output.log").exists()
        except (OSError, ValueError):
            continue  # not written yet, or replaced while we read it
        if meta.get("node_ip") == ip:
            finished = finished or meta.get("state") == "finished"
            if "state" not in meta and shipped and rows <= EPOCHS // 2:
                running.append(meta["run_id"])
    return finished, running


def _remove_when_busy(cluster: Any, node: Any, out: Path, report: dict[str, Any]) -> None:
    """Remove `node` once a run has finished there and another, there, has sent output."""
    ip = WORKERS[-1]
    while True:
        time.sleep(0.1)
        for log in (out / "sweep").glob("*/runs"):
            finished, running = _running_with_output(log.parent, ip)
            if finished and running:
                cluster.remove_node(node)
                report.update(removed_node_ip=ip, running_on_removed=running)
                return


def _refusals(tmp: Path) -> dict[str, Any]:
    """`check_fits` against this cluster, then with the cluster launcher's config on the head."""
    from raysweep.driver import cluster
    from raysweep.errors import ClusterError

    info = cluster.cluster_info()
    refused = {}
    for cpus, gpus in ((3.0, 0.0), (0.5, 2.0)):
        try:
            cluster.check_fits(info, cpus, gpus)
        except ClusterError as exc:
            refused[f"{cpus:g}/{gpus:g}"] = str(exc)
    home = os.environ["HOME"]
    os.environ["HOME"] = str(tmp)  # the head of a `ray up` cluster has ~/ray_bootstrap_config.yaml
    (tmp / "ray_bootstrap_config.yaml").write_text((REPO / "cluster.yaml").read_text())
    try:
        autoscaled = cluster.cluster_info()
    finally:
        os.environ["HOME"] = home
    fits = {}
    for cpus, gpus in ((8.0, 1.0), (9.0, 1.0)):
        try:
            cluster.check_fits(autoscaled, cpus, gpus)
            fits[f"{cpus:g}/{gpus:g}"] = True
        except ClusterError:
            fits[f"{cpus:g}/{gpus:g}"] = False
    return {"refused": refused, "fits_with_autoscaler": fits,
            "node_types": [list(t) for t in autoscaled.node_types]}


def scenario(out: Path) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    import raysweep
    from raysweep.driver.cluster import connect
    from raysweep.driver.runner import Resources
    from raysweep.errors import ClusterError

    started = time.time()
    head = {"num_cpus": 0, "include_dashboard": False, "_system_config": HEALTH_CHECKS}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    nodes = [cluster.add_node(num_cpus=2, num_gpus=1, node_ip_address=ip) for ip in WORKERS]
    report: dict[str, Any] = {"cluster_up_s": round(time.time() - started, 1)}
    connect(cluster.address)
    report.update(_refusals(out))
    spec = {"name": "cluster", "method": "random", "metric": {"name": "loss", "goal": "minimize"},
            "program": str(Path(__file__).resolve()),
            "command": ["${env}", "${interpreter}", "${program}", "probe", "${args}"],
            "parameters": {"x": {"distribution": "uniform", "min": 0.0, "max": 1.0}}}
    try:
        raysweep.run(spec, count=1, address=cluster.address, out=out / "refused",
                     resources=Resources(cpus_per_trial=4), progress=False)
    except ClusterError as exc:
        report["run_refused"] = str(exc)
    remover = threading.Thread(target=_remove_when_busy, args=(cluster, nodes[-1], out, report), daemon=True)
    remover.start()
    sweep_started = time.time()
    try:
        result = raysweep.run(spec, count=RUNS, address=cluster.address, out=out / "sweep", seed=0,
                              resources=Resources(cpus_per_trial=0.5, gpus_per_trial=0.5))
    finally:
        ray.shutdown()
        cluster.shutdown()  # also deletes the address file `ray.init()` would find
    report.update(sweep_s=round(time.time() - sweep_started, 1), state=result.state, log=str(result.path),
                  removed=not remover.is_alive())
    return report


CKPT_EPOCHS, CKPT_STEP_S, CKPT_READY = 10, 0.4, 3


def checkpointing_train(config: Any) -> None:
    """Function mode: one checkpoint per epoch through Ray; a new attempt starts after the last one."""
    import tempfile

    import raysweep

    checkpoint = raysweep.get_checkpoint()
    start = 0 if checkpoint is None else json.loads((Path(checkpoint.path) / "epoch.json").read_text()) + 1
    for epoch in range(start, CKPT_EPOCHS):
        time.sleep(CKPT_STEP_S)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "epoch.json").write_text(json.dumps(epoch))
            raysweep.log({"loss": (config.x - 0.5) ** 2 + 1.0 / (epoch + 1), "epoch": epoch,
                          "start_epoch": start}, checkpoint=folder)


def _remove_under_a_run(cluster: Any, nodes: dict[str, Any], log_root: Path, report: dict[str, Any]) -> None:
    """Remove the node of the first run that has logged `CKPT_READY` epochs there."""
    while True:
        time.sleep(0.1)
        for meta_path in log_root.glob("*/runs/*/wandb-metadata.json"):
            try:
                meta = json.loads(meta_path.read_text())
                rows = (meta_path.parent / "wandb-history.jsonl").read_text().count("\n")
            except (OSError, ValueError):
                continue
            if meta.get("node_ip") in nodes and "state" not in meta and rows >= CKPT_READY:
                cluster.remove_node(nodes[meta["node_ip"]])
                report.update(removed_node_ip=meta["node_ip"], run_on_removed=meta["run_id"])
                return


def checkpoint_scenario(out: Path, program: bool = False) -> dict[str, Any]:
    """Two worker nodes; the node under a checkpointing run is removed mid-run.

    Function mode checkpoints through `raysweep.log`; with `program`, the
    sweep's program (tests/programs/preemptible.py) saves each epoch in
    ``wandb.run.dir``, carried through ``--storage`` with each logged step.
    """
    import ray
    from ray.cluster_utils import Cluster

    import raysweep
    from raysweep.driver.runner import Resources
    from raysweep.trial.carry import EVERY_ENV, SETTLE_S

    head = {"num_cpus": 0, "include_dashboard": False, "_system_config": HEALTH_CHECKS}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    nodes = {ip: cluster.add_node(num_cpus=1, node_ip_address=ip) for ip in WORKERS}
    report: dict[str, Any] = {}
    remover = threading.Thread(target=_remove_under_a_run, args=(cluster, nodes, out, report), daemon=True)
    remover.start()
    spec: dict[str, Any] = {"name": "checkpoints", "method": "grid", "metric": {"name": "loss"},
                            "parameters": {"x": {"values": [0.25, 0.75]}}}
    train, options = checkpointing_train, {}
    if program:
        spec = {**spec, "program": str(REPO / "tests" / "programs" / "preemptible.py"),
                "parameters": {"mark": {"values": [True, False]}, "epochs": {"value": CKPT_EPOCHS},
                               "sleep": {"value": 2 * SETTLE_S + 0.5}, "pidfile": {"value": str(out / "pids")}}}
        train, options = None, {"storage": str(out / "storage")}
        os.environ.update({"WANDB_DIR": str(out), EVERY_ENV: "0.1"})  # each attempt's folder: out/wandb/run-*
    try:
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.4")  # where the lost run goes on
        result = raysweep.run(spec, train, address=cluster.address, out=out, progress=False,
                              resources=Resources(cpus_per_trial=1), **options)
    finally:
        ray.shutdown()
        cluster.shutdown()
    report.update(state=result.state, log=str(result.path), removed=not remover.is_alive())
    return report


def main(argv: list[str]) -> None:
    if argv[:1] == ["probe"]:
        probe(argv[1:])
        return
    # A Cluster writes its address to <RAY_TMPDIR>/ray/ray_current_cluster, where any `ray.init()`
    # on the machine would find it: this Ray keeps to a directory of its own (short, for its sockets).
    ray_tmp = tempfile.mkdtemp(prefix="rsc", dir="/tmp")
    os.environ["RAY_TMPDIR"] = ray_tmp
    try:
        if argv[0] in ("checkpoint", "carry"):
            report = checkpoint_scenario(Path(argv[1]), program=argv[0] == "carry")
        else:
            report = scenario(Path(argv[1]))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
